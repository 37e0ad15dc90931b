//! Event type → handler, with NATS-style wildcards (`*` one token, `>` the rest).

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Error;
use crate::handler::ErasedHandler;

/// Event type → handler; exact types first, then wildcard patterns in order.
pub(crate) struct Routes {
    pub(crate) types: Vec<String>,
    exact: HashMap<String, Arc<dyn ErasedHandler>>,
    patterns: Vec<(Vec<String>, Arc<dyn ErasedHandler>)>,
}

impl Routes {
    pub(crate) fn new(handlers: Vec<(String, Arc<dyn ErasedHandler>)>) -> Result<Routes, Error> {
        if handlers.is_empty() {
            return Err(Error::Config(
                "no handlers registered: the node rejects a worker without types".into(),
            ));
        }
        let mut routes = Routes {
            types: Vec::new(),
            exact: HashMap::new(),
            patterns: Vec::new(),
        };
        for (ty, handler) in handlers {
            if ty.is_empty() || routes.types.contains(&ty) {
                return Err(Error::Config(format!(
                    "event type {ty:?} is empty or registered twice"
                )));
            }
            routes.types.push(ty.clone());
            if ty.split('.').any(|t| t == "*" || t == ">") {
                routes
                    .patterns
                    .push((ty.split('.').map(str::to_owned).collect(), handler));
            } else {
                routes.exact.insert(ty, handler);
            }
        }
        Ok(routes)
    }

    pub(crate) fn lookup(&self, ty: &str) -> Option<Arc<dyn ErasedHandler>> {
        if let Some(h) = self.exact.get(ty) {
            return Some(h.clone());
        }
        let tokens: Vec<&str> = ty.split('.').collect();
        self.patterns
            .iter()
            .find(|(p, _)| matches_pattern(p, &tokens))
            .map(|(_, h)| h.clone())
    }
}

fn matches_pattern(pattern: &[String], tokens: &[&str]) -> bool {
    for (i, p) in pattern.iter().enumerate() {
        match p.as_str() {
            ">" => return tokens.len() > i,
            "*" if i < tokens.len() => {}
            p if tokens.get(i) == Some(&p) => {}
            _ => return false,
        }
    }
    pattern.len() == tokens.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let p = |s: &str| s.split('.').map(str::to_owned).collect::<Vec<_>>();
        let t = |s: &'static str| s.split('.').collect::<Vec<_>>();
        assert!(matches_pattern(&p("order.*"), &t("order.created")));
        assert!(!matches_pattern(&p("order.*"), &t("order.created.v2")));
        assert!(matches_pattern(&p("order.>"), &t("order.created.v2")));
        assert!(!matches_pattern(&p("order.>"), &t("order")));
        assert!(!matches_pattern(&p("order.*"), &t("payment.created")));
    }
}

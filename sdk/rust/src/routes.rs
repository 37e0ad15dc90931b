//! Event type → handler, with NATS-style wildcards (`*` one token, `>` the rest).

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Error;
use crate::handler::ErasedHandler;

/// Event type → handler; exact types first, then wildcard patterns in order.
pub(crate) struct Routes {
    pub(crate) types: Vec<String>,
    exact: HashMap<String, Arc<dyn ErasedHandler>>,
    /// (tokens, the registered type, handler), in registration order.
    patterns: Vec<(Vec<String>, String, Arc<dyn ErasedHandler>)>,
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
            check_pattern(&ty)?;
            if routes.types.contains(&ty) {
                return Err(Error::Config(format!(
                    "event type {ty:?} is registered twice"
                )));
            }
            routes.types.push(ty.clone());
            if ty.split('.').any(|t| t == "*" || t == ">") {
                let tokens = ty.split('.').map(str::to_owned).collect();
                routes.patterns.push((tokens, ty, handler));
            } else {
                routes.exact.insert(ty, handler);
            }
        }
        Ok(routes)
    }

    pub(crate) fn lookup(&self, ty: &str) -> Option<Arc<dyn ErasedHandler>> {
        self.route(ty).map(|(_, h)| h.clone())
    }

    /// The registered type that handles `ty`, and its handler.
    fn route(&self, ty: &str) -> Option<(&str, &Arc<dyn ErasedHandler>)> {
        if let Some((key, h)) = self.exact.get_key_value(ty) {
            return Some((key, h));
        }
        let tokens: Vec<&str> = ty.split('.').collect();
        self.patterns
            .iter()
            .find(|(p, _, _)| matches_pattern(p, &tokens))
            .map(|(_, registered, h)| (registered.as_str(), h))
    }
}

/// A registered type: dot-separated non-empty tokens without whitespace, where `*`
/// and `>` stand only as whole tokens and `>` only last (spec/vectors/wildcards).
fn check_pattern(ty: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Err(Error::Config(format!(
            "event type {ty:?} is not a valid pattern: {why}"
        )))
    };
    if ty.is_empty() {
        return bad("it is empty");
    }
    if ty.chars().any(char::is_whitespace) {
        return bad("it contains whitespace");
    }
    let tokens: Vec<&str> = ty.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return bad("it has an empty token");
        }
        if *token == ">" && i + 1 != tokens.len() {
            return bad("`>` must be the last token");
        }
        if token.len() > 1 && (token.contains('*') || token.contains('>')) {
            return bad("`*` and `>` must be whole tokens");
        }
    }
    Ok(())
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
    use crate::{Context, Event, HandlerError};
    use serde_json::Value;

    fn tokens(s: &str) -> Vec<&str> {
        s.split('.').collect()
    }

    /// spec/vectors/wildcards/subjects.json, shared by every runtime.
    fn vectors() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../spec/vectors/wildcards/subjects.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    fn cases<'v>(v: &'v Value, key: &str) -> &'v Vec<Value> {
        let list = v[key].as_array().unwrap_or_else(|| panic!("no {key:?}"));
        assert!(!list.is_empty(), "no {key:?} cases");
        list
    }

    /// A handler that does nothing, distinguishable by its position.
    fn table(patterns: &[&str]) -> Vec<(String, Arc<dyn ErasedHandler>)> {
        patterns
            .iter()
            .map(|p| {
                let h = |_ctx: Context, _ev: Event| async { Ok::<(), HandlerError>(()) };
                (p.to_string(), Arc::new(h) as Arc<dyn ErasedHandler>)
            })
            .collect()
    }

    #[test]
    fn wildcard_vectors_match() {
        let v = vectors();
        for case in cases(&v, "matches") {
            let pattern = case["pattern"].as_str().unwrap();
            let subject = case["subject"].as_str().unwrap();
            check_pattern(pattern).unwrap_or_else(|e| panic!("{case}: {e}"));
            let p: Vec<String> = pattern.split('.').map(str::to_owned).collect();
            assert_eq!(
                matches_pattern(&p, &tokens(subject)),
                case["matches"].as_bool().unwrap(),
                "{case}"
            );
            // the same through the routing table (exact types take the map)
            let routes = Routes::new(table(&[pattern])).unwrap();
            assert_eq!(
                routes.lookup(subject).is_some(),
                case["matches"].as_bool().unwrap(),
                "{case} (routing)"
            );
        }
    }

    #[test]
    fn wildcard_vectors_invalid_patterns_are_refused() {
        let v = vectors();
        for case in cases(&v, "invalid_patterns") {
            let pattern = case["pattern"].as_str().unwrap();
            match Routes::new(table(&[pattern])) {
                Err(Error::Config(m)) => assert!(m.contains("event type"), "{m}"),
                Err(other) => panic!("{case}: wrong error {other:?}"),
                Ok(_) => panic!("{case}: accepted"),
            }
        }
    }

    #[test]
    fn wildcard_vectors_routing_precedence() {
        let v = vectors();
        for case in cases(&v, "routing") {
            let patterns: Vec<&str> = case["patterns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect();
            let routes = Routes::new(table(&patterns)).unwrap();
            let picked = routes
                .route(case["subject"].as_str().unwrap())
                .map(|(registered, _)| registered);
            assert_eq!(picked, case["handler"].as_str(), "{case}");
        }
    }

    #[test]
    fn duplicates_are_refused() {
        assert!(matches!(
            Routes::new(table(&["a.*", "a.*"])),
            Err(Error::Config(m)) if m.contains("registered twice")
        ));
    }
}

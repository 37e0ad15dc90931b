"""The implementation of :mod:`crosswire.schema`. Kept empty so that the node's modules can
import the leaf modules (:mod:`._ref`, :mod:`._wire`) without the exporters and the app."""

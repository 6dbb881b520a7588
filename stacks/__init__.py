"""The AIOps platform's infrastructure: typed config, one module per target, shared components."""

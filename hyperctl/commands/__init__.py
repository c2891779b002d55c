"""The ``hyper`` commands, one module per subject; ``hyperctl.group`` registers them."""

"""The ``hyper`` commands, one module per subject; ``hyperctl.cli`` registers them."""

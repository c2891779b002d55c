"""hyperd: the hyper daemon and the libraries it is built from."""

__version__ = "0.1.0"

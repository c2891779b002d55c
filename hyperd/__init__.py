"""hyperd: the hyper daemon and the libraries it is built from."""

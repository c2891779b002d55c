"""Docker's copy semantics for ``hyper cp``: where a copied resource lands, and its tar
streams built and extracted on this side."""

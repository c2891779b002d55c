"""hyper (hyperctl): the thin command line over the hyperd API."""

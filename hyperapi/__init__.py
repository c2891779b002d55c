"""What the hyper client and the daemon agree on (and nothing else).

Like moby's go-connections/nat and go-units, shared by the docker CLI and dockerd:
``portspec`` (Docker's ``-p`` syntax), ``units`` (sizes such as ``256m``) and ``errors``
(the error kinds with their HTTP status and CLI exit code). Stdlib only; it imports
neither ``hyperd`` nor ``hyperctl``.
"""

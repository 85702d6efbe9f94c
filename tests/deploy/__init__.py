"""Checks of the Dockerfile, deploy/compose.yaml and deploy/kubernetes/, without Docker
or a cluster: they parse, they render, and they keep the invariants an operator relies on."""

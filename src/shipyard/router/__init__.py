"""The local endpoint router: one nginx per workspace in front of the deployments' own ports.

Why nginx and not a Python proxy: it splits traffic by weight (`split_clients`), mirrors
requests (`mirror`), reloads its configuration without dropping a connection, and is the same
kind of component a cluster gateway is, so the local loop behaves like the real one.
"""

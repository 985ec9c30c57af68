"""The ssh target: a job's script on another host over the system ssh client (target), the
connection with its identity and errors (session), and the remote half that detaches the script
(launcher, copied to the host and run there with the standard library only)."""

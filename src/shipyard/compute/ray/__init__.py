"""The ray target: steps as Ray jobs (jobs), the dashboard and Jobs API client (jobs_api), a local
head node Shipyard runs itself (head), and files that create a real cluster (cluster_config).
Importing this package imports no Ray."""

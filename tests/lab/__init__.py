"""Lab scaffolding: real routing daemons in network namespaces, used to record capture fixtures."""

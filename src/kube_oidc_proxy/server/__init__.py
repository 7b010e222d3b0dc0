"""The IO shell: listeners, connections, the upstream pool, tunnels, probes, process lifecycle."""

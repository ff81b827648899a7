"""Stand-ins for tests, the demo and benchmarks: throwaway databases, an Elasticsearch."""

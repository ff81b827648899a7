"""Helpers for tests, the demo and benchmarks: throwaway databases."""

/// StylistTesting: the real server on an ephemeral port, for tests.

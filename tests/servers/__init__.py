"""Real servers on loopback that tests start themselves: an S3-compatible store, a misbehaving HTTP server."""

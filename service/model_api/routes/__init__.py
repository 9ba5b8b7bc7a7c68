"""Route tables, one module per API family; each exposes `routes(state) -> {path: Route}`."""

"""storefront: the async FastAPI front end that shoppers (and the load generator) talk to."""

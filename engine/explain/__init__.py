"""The one explain core: plugin API, registry, capture, plan/explain/finish, session, colouring."""

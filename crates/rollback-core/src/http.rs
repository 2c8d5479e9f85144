//! The shared HTTP client (checks, deploy hooks, webhooks): rustls with the `ring` provider,
//! no redirects followed beyond a small limit, no proxy surprises.

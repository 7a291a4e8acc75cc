//! The token request model, built from GET query pairs or OAuth2 POST form pairs.
//!
//! IMPLEMENTATION PENDING (helper A).

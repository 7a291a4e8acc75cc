//! The docker_auth ACL language: ordered rules, first match wins.
//!
//! IMPLEMENTATION PENDING (helper B).

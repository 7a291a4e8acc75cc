//! Token minting: claims, the compact JWS, and the token endpoint's JSON response.
//!
//! IMPLEMENTATION PENDING (helper C).

//! Tests of token minting.

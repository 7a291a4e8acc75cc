//! Tests of SigningKey, VerifyingKey and KeySet with generated keys.

//! SIP wire handling and digest authentication.

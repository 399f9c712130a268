//! The upstream adapter's I/O: TCP connections to the `[upstream]` routes and from
//! trusted upstream peers (being built).

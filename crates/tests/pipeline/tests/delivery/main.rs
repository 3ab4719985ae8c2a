//! End-to-end tests, one binary per area (each test binary links the
//! whole workspace, so few binaries build fast). Delivery: from a claimed level to Meta — the pipeline end to end, capi-sender's batches, leases and retries, outages and orderly stops.

mod graceful_stop;
mod leases;
mod outages;
mod pipeline;
mod sender;

//! slow_calls: the example filter plugin in Rust. An event named
//! python.call.stop whose measurement duration (int or float) is below
//! config min_duration_ns (default 0) is dropped; every other event is kept
//! (also a python.call.stop without a numeric duration: it cannot be judged).
#![no_std]

use core::sync::atomic::{AtomicI64, Ordering};
use snakepipe::{Config, Event, Number};

static MIN_DURATION: AtomicI64 = AtomicI64::new(0);

fn init(c: &Config) -> Result<(), i32> {
    c.only(&[b"min_duration_ns"])?;
    MIN_DURATION.store(c.i64(b"min_duration_ns", 0)?, Ordering::Relaxed);
    Ok(())
}

fn keep(e: &Event) -> bool {
    if !snakepipe::eq_bytes(e.name, b"python.call.stop") {
        return true;
    }
    let min = MIN_DURATION.load(Ordering::Relaxed);
    match e.number(b"duration") {
        Some(Number::Int(d)) => d >= min,
        Some(Number::Float(d)) => d >= min as f64,
        None => true,
    }
}

// The filter reads only the duration measurement: the host then sends each
// record without its metadata and host context (less to encode).
snakepipe::fields!(snakepipe::FIELDS_MEASUREMENTS);
snakepipe::init!(init);
snakepipe::filter!(keep);

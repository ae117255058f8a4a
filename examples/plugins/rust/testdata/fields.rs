//! fields: a Rust SDK test filter (fields_test.go), not an example.
//! It declares the field groups named by config "fields" (a decimal,
//! default FIELDS_ALL) with fields_fn!, which the host calls after
//! snk_init. A value with other bits is passed on as it is (the host
//! refuses it). It keeps every event.
#![no_std]

use core::sync::atomic::{AtomicI32, Ordering};
use snakepipe::{Config, Event, ERR_CONFIG, FIELDS_ALL};

static GROUPS: AtomicI32 = AtomicI32::new(FIELDS_ALL);

fn init(c: &Config) -> Result<(), i32> {
    c.only(&[b"fields"])?;
    let v = c.i64(b"fields", FIELDS_ALL as i64)?;
    let v = i32::try_from(v).map_err(|_| ERR_CONFIG)?;
    GROUPS.store(v, Ordering::Relaxed);
    Ok(())
}

fn groups() -> i32 {
    GROUPS.load(Ordering::Relaxed)
}

fn keep(_e: &Event) -> bool {
    true
}

snakepipe::init!(init);
snakepipe::fields_fn!(groups);
snakepipe::filter!(keep);

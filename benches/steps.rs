//! Criterion benchmarks of each step of a decode (`cargo bench --bench steps`),
//! so that a regression shows in the step where it happened.
//!
//! Run just this group: `cargo bench --bench steps -- steps`.
//!
//! Bench ids are `steps/<input>_<bytes>B/<step>`, on the inputs of
//! `benches/decode.rs`. Each step's input is the real output of the step
//! before, computed once outside the timing loop, and `total` is the whole
//! decode for comparison; before anything is timed, the steps run one after
//! the other must give the reading the whole decode gives.
//!
//! * DLMS push ([`mbuspico::dlms::decode`]) on the Netz NÖ Kaifa MA309M
//!   (`fkw9_kaifa_ma309m_real`, 2 M-Bus frames, AES-GCM without tag), the
//!   Wiener Netze Siemens IM350 HDLC push (`wienernetze_siemens_im350`), the
//!   L+G E570 HDLC general-block-transfer push (`sdc_lg_e570_encrypted`) and
//!   DLMS A of `benchmarks/compare.py` (a bare general-glo-ciphering APDU with
//!   a GCM tag, so without `deframe`):
//!   - `deframe`: the link layer, frame bytes to ciphered APDU:
//!     [`mbuspico::dlms::transport::reassemble`] (M-Bus),
//!     [`mbuspico::dlms::hdlc::reassemble`] and, for a general block transfer,
//!     [`mbuspico::dlms::gbt::reassemble`];
//!   - `decrypt`: [`mbuspico::dlms::decrypt`], the security header, AES-128-GCM
//!     and the tag check, to the plain data-notification (the APDU handed over
//!     as `dlms::decode` hands it: owned when reassembled, else borrowed);
//!   - `parse`: [`mbuspico::dlms::notification::parse`], the data-notification
//!     and its A-XDR body to the value tree;
//!   - `build`: [`mbuspico::dlms::reading::build`], the tree to the reading (OBIS
//!     values with scaler-unit applied, MBusPico fields).
//! * Wired M-Bus ([`mbuspico::mbus::decode`]) on the Itron CF Echo II frame and
//!   the libmbus frames `EMU_EMU-Professional-375-M-Bus.hex` and
//!   `metrona_ultraheat_xs.hex`:
//!   - `frame`: [`mbuspico::mbus::link::parse`], start, length, C-, A- and
//!     CI-field, checksum and stop;
//!   - `records`: [`mbuspico::mbus::data::parse`], the data header and the
//!     records split into DIF/DIFE, VIF/VIFE and data;
//!   - `build`: [`mbuspico::mbus::reading::build`], what the VIFs mean and the
//!     values they scale.
//! * DSMR 5 telegram ([`mbuspico::dsmr::decode`], `dsmr_parser/TELEGRAM_V5`):
//!   - `frame_crc`: [`mbuspico::dsmr::telegram::find_end`] and the CRC-16 up to
//!     the `!` ([`mbuspico::dsmr::crc::crc16`]), as `telegram::parse` starts;
//!   - `parse`: [`mbuspico::dsmr::telegram::parse`], which does `frame_crc` and
//!     then the grammar (lines, codes, groups): the grammar alone is
//!     `parse` − `frame_crc`;
//!   - `build`: [`mbuspico::dsmr::reading::build`], the values typed, named and
//!     time-zoned into the reading.
//! * Luxembourg Smarty (the frame of `benchmarks/bench_decode.py`):
//!   - `decrypt`: [`mbuspico::dlms::decrypt`] of the general-glo-ciphering frame;
//!   - `dsmr_decode`: [`mbuspico::dsmr::decode`] of the plaintext telegram.
//!
//! The group runs each bench briefly (see [`quick`]): all of it takes well
//! under a minute.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{dlms_a_frame, dlms_vector, dsmr_text, hex_file, smarty_frame};
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion,
};
use mbuspico::dlms::{
    self, gbt, hdlc, notification, offsets::OffsetMap, transport, Decrypted, Keys,
};
use mbuspico::{dsmr, mbus};
use std::borrow::Cow;
use std::hint::black_box;
use std::time::Duration;

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Sets a group's sampling for its many fast benches (each step of a decode
/// takes microseconds at most): 50 samples in half a second after 200 ms of
/// warm-up.
fn quick(group: &mut Group<'_>) {
    group.sample_size(50);
    group.warm_up_time(Duration::from_millis(200));
    group.measurement_time(Duration::from_millis(500));
}

/// The link layer of a DLMS push, as `dlms::decode` unframes it (M-Bus or
/// HDLC frames, general block transfer blocks reassembled): the APDU and where
/// its bytes came from; `None` for a bare APDU (nothing to deframe).
fn deframe(input: &[u8]) -> mbuspico::Result<Option<transport::Reassembled>> {
    match input.first() {
        Some(&mbus::frame::START) => transport::reassemble(input).map(Some),
        Some(&hdlc::FLAG) => {
            let r = hdlc::reassemble(input)?;
            if r.apdu.first() == Some(&hdlc::GENERAL_BLOCK_TRANSFER) {
                gbt::reassemble(input, r).map(Some)
            } else {
                Ok(Some(r))
            }
        }
        _ => Ok(None),
    }
}

/// The steps of a DLMS push decode, `steps/<name>_<bytes>B/<step>`.
fn dlms_steps(group: &mut Group<'_>, name: &str, frame: &[u8], keys: &Keys) {
    let input = format!("{name}_{}B", frame.len());
    let id = |step: &str| BenchmarkId::new(&input, step);

    let reassembled = deframe(frame).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let (apdu, map): (Cow<'_, [u8]>, OffsetMap) = match &reassembled {
        Some(r) => {
            assert_eq!(r.consumed, frame.len(), "{name}: trailing bytes");
            group.bench_function(id("deframe"), |b| b.iter(|| deframe(black_box(frame))));
            (Cow::Owned(r.apdu.clone()), r.map.clone())
        }
        None => (Cow::Borrowed(frame), OffsetMap::identity(0, frame.len())),
    };

    let decrypted: Decrypted = dlms::decrypt(apdu.clone(), &map, keys).unwrap();
    group.bench_function(id("decrypt"), |b| {
        b.iter_batched(
            || apdu.clone(),
            |a| dlms::decrypt(black_box(a), &map, keys),
            BatchSize::SmallInput,
        )
    });

    let plaintext = decrypted.plaintext();
    let n = notification::parse(plaintext).unwrap();
    group.bench_function(id("parse"), |b| {
        b.iter(|| notification::parse(black_box(plaintext)))
    });

    let title = Some(decrypted.header.system_title);
    let counter = Some(decrypted.header.frame_counter);
    let build = || dlms::reading::build(black_box(&n.body), n.date_time.as_ref(), title, counter);
    assert_eq!(build(), dlms::decode(frame, keys).unwrap(), "{name}");
    group.bench_function(id("build"), |b| b.iter(build));

    group.bench_function(id("total"), |b| {
        b.iter(|| dlms::decode(black_box(frame), keys))
    });
}

/// The steps of a wired M-Bus decode, `steps/<name>_<bytes>B/<step>`.
fn mbus_steps(group: &mut Group<'_>, name: &str, frame: &[u8]) {
    let input = format!("{name}_{}B", frame.len());
    let id = |step: &str| BenchmarkId::new(&input, step);

    let (link, len) = mbus::link::parse(frame, 0).unwrap();
    assert_eq!(len, frame.len(), "{name}: trailing bytes");
    let mbus::Frame::Long(f) = link else {
        panic!("{name}: not a long frame")
    };
    group.bench_function(id("frame"), |b| {
        b.iter(|| mbus::link::parse(black_box(frame), 0))
    });

    let app = mbus::data::parse(f.ci, f.data, f.data_offset).unwrap();
    group.bench_function(id("records"), |b| {
        b.iter(|| mbus::data::parse(f.ci, black_box(f.data), f.data_offset))
    });

    assert_eq!(
        mbus::reading::build(&f, &app),
        mbus::decode(frame).unwrap(),
        "{name}"
    );
    group.bench_function(id("build"), |b| {
        b.iter(|| mbus::reading::build(black_box(&f), black_box(&app)))
    });

    group.bench_function(id("total"), |b| b.iter(|| mbus::decode(black_box(frame))));
}

/// The steps of a DSMR 5 decode, `steps/dsmr5_telegram_<bytes>B/<step>`.
fn dsmr_steps(group: &mut Group<'_>, options: &dsmr::Options) {
    let telegram = dsmr_text("dsmr_parser/TELEGRAM_V5");
    let input = format!("dsmr5_telegram_{}B", telegram.len());
    let id = |step: &str| BenchmarkId::new(&input, step);

    // Where the telegram ends and its CRC, as `telegram::parse` finds them.
    let frame_crc = |t: &[u8]| {
        let (bang, end) = dsmr::telegram::find_end(t)?;
        Some((dsmr::crc::crc16(t.get(..=bang)?), end))
    };
    let (crc, end) = frame_crc(&telegram).unwrap();
    let t = dsmr::telegram::parse(&telegram).unwrap();
    assert_eq!(t.crc, dsmr::telegram::Crc::Ok(crc));
    assert_eq!(t.len, end);
    group.bench_function(id("frame_crc"), |b| {
        b.iter(|| frame_crc(black_box(&telegram)))
    });
    group.bench_function(id("parse"), |b| {
        b.iter(|| dsmr::telegram::parse(black_box(&telegram)))
    });

    let build = || dsmr::reading::build(black_box(&t), &options.tz, &options.names);
    assert_eq!(build(), dsmr::decode(&telegram, options).unwrap());
    group.bench_function(id("build"), |b| b.iter(build));

    group.bench_function(id("total"), |b| {
        b.iter(|| dsmr::decode(black_box(&telegram), options))
    });
}

/// The steps of a Smarty decode, `steps/smarty_encrypted_<bytes>B/<step>`:
/// decryption, then the P1 telegram (as the Python `Decoder` does).
fn smarty_steps(group: &mut Group<'_>, options: &dsmr::Options) {
    let (frame, keys) = smarty_frame();
    let input = format!("smarty_encrypted_{}B", frame.len());
    let id = |step: &str| BenchmarkId::new(&input, step);
    let map = OffsetMap::identity(0, frame.len());

    let decrypt = |f: &[u8]| dlms::decrypt(Cow::Borrowed(f), &map, &keys);
    let decrypted = decrypt(&frame).unwrap();
    group.bench_function(id("decrypt"), |b| b.iter(|| decrypt(black_box(&frame))));

    let plaintext = decrypted.plaintext();
    let reading = dsmr::decode(plaintext, options).unwrap();
    assert!(reading.header.starts_with("Lux5") && reading.crc == "ok");
    group.bench_function(id("dsmr_decode"), |b| {
        b.iter(|| dsmr::decode(black_box(plaintext), options))
    });

    let total = |f: &[u8]| {
        let decrypted = decrypt(f)?;
        dsmr::decode(decrypted.plaintext(), options)
    };
    assert_eq!(total(&frame).unwrap(), reading);
    group.bench_function(id("total"), |b| b.iter(|| total(black_box(&frame))));
}

fn steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("steps");
    quick(&mut group);
    for (name, id) in [
        ("kaifa_mbus", "fkw9_kaifa_ma309m_real"),
        ("im350_hdlc", "wienernetze_siemens_im350"),
        ("e570_hdlc_gbt", "sdc_lg_e570_encrypted"),
    ] {
        let (frame, keys) = dlms_vector(id);
        dlms_steps(&mut group, name, &frame, &keys);
    }
    let (frame, keys) = dlms_a_frame();
    let a = dlms::decode(&frame, &keys).unwrap();
    assert_eq!(a.timestamp.as_deref(), Some("2026-11-21T12:30:00+01:00"));
    assert_eq!(a.obis.0.len(), 6, "DLMS A: six OBIS values");
    dlms_steps(&mut group, "dlms_a_tagged", &frame, &keys);

    for (name, path) in [
        // The 83-byte frame of peers-baseline.md (checksum corrected to 0x70).
        (
            "cf_echo_ii_13rec",
            "mbus/otb_iot_cf_echo_ii_checksum_corrected.hex",
        ),
        (
            "emu_professional_32rec",
            "libmbus/test-frames/EMU_EMU-Professional-375-M-Bus.hex",
        ),
        (
            "metrona_ultraheat_xs_40rec",
            "libmbus/test-frames/metrona_ultraheat_xs.hex",
        ),
    ] {
        mbus_steps(&mut group, name, &hex_file(path));
    }

    let options = dsmr::Options::default();
    dsmr_steps(&mut group, &options);
    smarty_steps(&mut group, &options);
    group.finish();
}

criterion_group!(benches, steps);
criterion_main!(benches);

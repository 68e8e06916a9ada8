//! DSMR P1 telegrams (Dutch Smart Meter Requirements 2.2 to 5.0.2, Belgian
//! e-MUCS, Luxembourg Smarty and the other P1 variants in use).

pub mod crc;

//! `BinpackAlgorithm`: the selectable packing algorithms and their configuration names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// A gang bin-packing algorithm, named in configuration exactly as palantir named it.
///
/// | name | executors | zones |
/// | --- | --- | --- |
/// | `tightly-pack` | fill each node in order before the next | any |
/// | `distribute-evenly` | round-robin over the nodes in order | any |
/// | `minimal-fragmentation` | fewest, fullest-fitting nodes | any |
/// | `az-aware-tightly-pack` | as `single-az-tightly-pack`, else `tightly-pack` across zones | prefers one |
/// | `single-az-tightly-pack` | `tightly-pack` inside one zone | exactly one |
/// | `single-az-minimal-fragmentation` | `minimal-fragmentation` inside one zone | exactly one |
///
/// All of them share palantir's driver loop: the driver goes on the first driver candidate (in
/// priority order) on which it fits together with all executors.
///
/// Every algorithm picks the same nodes as palantir's lib v0.15.0 on 2,400 generated vectors
/// but one (`common/tests/palantir_parity.rs`; `docs/palantir-quirks.md`, "Bin-packing
/// parity"). Decisions where sparkgang differs from palantir:
///
/// - `minimal-fragmentation` is selectable, and an unknown name is an error that lists the
///   accepted names instead of silently meaning `distribute-evenly` (palantir issue #131).
/// - Quirk 10, half fixed: single-zone packing takes the first zone that fits as the baseline
///   and replaces it only with a strictly better average packing efficiency, so a gang that
///   fits is placed even when every efficiency is 0 (palantir compared against an initial 0
///   and then answered "no capacity"). As in palantir, a zone without executor candidates is
///   skipped even for 0 executors: a single-zone application's executors belong in its
///   driver's zone, and that zone could host none.
/// - Ties are deterministic: zones by name, nodes by name (palantir issue #231).
/// - Packing efficiency divides millicores exactly instead of rounding cpu up to whole cores
///   (identical for whole cores, as in every palantir test vector; with fractional cpu a
///   single-zone algorithm can pick another zone).
/// - Failures say why ([`super::PackingFailure`]): the driver fits nowhere (and in which
///   resource), or how many executors fit at most and which resource ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BinpackAlgorithm {
    TightlyPack,
    DistributeEvenly,
    MinimalFragmentation,
    AzAwareTightlyPack,
    SingleAzTightlyPack,
    SingleAzMinimalFragmentation,
}

impl BinpackAlgorithm {
    /// Every algorithm, in the order the names are listed in errors.
    pub const ALL: [BinpackAlgorithm; 6] = [
        BinpackAlgorithm::TightlyPack,
        BinpackAlgorithm::DistributeEvenly,
        BinpackAlgorithm::MinimalFragmentation,
        BinpackAlgorithm::AzAwareTightlyPack,
        BinpackAlgorithm::SingleAzTightlyPack,
        BinpackAlgorithm::SingleAzMinimalFragmentation,
    ];

    /// The configuration name, e.g. `single-az-tightly-pack`.
    pub const fn name(self) -> &'static str {
        match self {
            BinpackAlgorithm::TightlyPack => "tightly-pack",
            BinpackAlgorithm::DistributeEvenly => "distribute-evenly",
            BinpackAlgorithm::MinimalFragmentation => "minimal-fragmentation",
            BinpackAlgorithm::AzAwareTightlyPack => "az-aware-tightly-pack",
            BinpackAlgorithm::SingleAzTightlyPack => "single-az-tightly-pack",
            BinpackAlgorithm::SingleAzMinimalFragmentation => "single-az-minimal-fragmentation",
        }
    }

    /// Places a gang only inside one zone (palantir's `IsSingleAz`): executors added later
    /// should then stay in the zone of the application (§8.4 step 3).
    pub const fn is_single_az(self) -> bool {
        matches!(
            self,
            BinpackAlgorithm::SingleAzTightlyPack | BinpackAlgorithm::SingleAzMinimalFragmentation
        )
    }

    /// Places executors to minimise fragmentation; a single later executor is then placed with
    /// [`super::least_fragmenting_node`] rather than [`super::first_fitting_node`].
    pub const fn minimises_fragmentation(self) -> bool {
        matches!(
            self,
            BinpackAlgorithm::MinimalFragmentation | BinpackAlgorithm::SingleAzMinimalFragmentation
        )
    }
}

impl fmt::Display for BinpackAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A bin-packing algorithm name that is not one of [`BinpackAlgorithm::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown bin-packing algorithm {given:?}; accepted: {}",
    accepted_names()
)]
pub struct UnknownBinpackAlgorithm {
    pub given: String,
}

fn accepted_names() -> String {
    BinpackAlgorithm::ALL
        .iter()
        .map(|a| a.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for BinpackAlgorithm {
    type Err = UnknownBinpackAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BinpackAlgorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownBinpackAlgorithm {
                given: s.to_owned(),
            })
    }
}

impl<'de> Deserialize<'de> for BinpackAlgorithm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

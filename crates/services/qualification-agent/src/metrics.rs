//! qualification-agent's own metrics (served at `/metrics` with every
//! service's, `runtime::metrics`): analyses by outcome, model calls and
//! tokens, levels claimed by level and source.

use domain::level::Level;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use runtime::metrics::OutcomeLabel;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LevelLabel {
    pub level: String,
    /// rule, analysis or crm.
    pub by: String,
}

pub struct Metrics {
    /// ok, failed (the model answered no usable analysis), unavailable.
    pub analyses: Family<OutcomeLabel, Counter>,
    pub model_calls: Counter,
    pub model_tokens: Family<TokenLabel, Counter>,
    pub levels_claimed: Family<LevelLabel, Counter>,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Arc<Metrics> {
        let m = Metrics {
            analyses: Family::default(),
            model_calls: Counter::default(),
            model_tokens: Family::default(),
            levels_claimed: Family::default(),
        };
        registry.register(
            "qualification_analyses",
            "Qualification analyses by outcome",
            m.analyses.clone(),
        );
        registry.register(
            "qualification_model_calls",
            "Calls to the model for qualification",
            m.model_calls.clone(),
        );
        registry.register(
            "qualification_model_tokens",
            "Model tokens for qualification, by kind",
            m.model_tokens.clone(),
        );
        registry.register(
            "levels_claimed",
            "Conversion levels claimed (events queued), by level and source",
            m.levels_claimed.clone(),
        );
        Arc::new(m)
    }

    pub fn analysis(&self, outcome: &'static str) {
        self.analyses.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    pub fn claimed(&self, levels: &[Level], by: &str) {
        for level in levels {
            self.levels_claimed
                .get_or_create(&LevelLabel {
                    level: level.to_string(),
                    by: by.to_owned(),
                })
                .inc();
        }
    }
}

//! Opening an analysis: the call's metadata resolved into settings, the preflight, the
//! judge's plan from the primary's history, and the analysis of a revision found again
//! on later calls.

use super::{judging, settings, Analyst, HookCall, Refusal};
use crate::domain::{now_millis, AnalysisSettings, CanaryName, CanarySettings, Controller};
use crate::sli::templates::TemplateVariables;
use crate::sli::SliTarget;
use crate::store::{Analysis, NewAnalysis};

impl Analyst {
    /// The call's metadata resolved against the server's defaults; 400 naming the key
    /// of a value that does not parse.
    pub(super) fn resolve_settings(&self, call: &HookCall) -> Result<CanarySettings, Refusal> {
        let mut settings = settings::resolve(&call.key.name, &call.metadata, &self.config)
            .map_err(|e| Refusal::bad_request(e.to_string()))?;
        settings.controller = call.controller;
        Ok(settings)
    }

    /// What the SLI source reads for this analysis.
    pub(super) fn sli_target(
        &self,
        settings: &AnalysisSettings,
        call: &HookCall,
    ) -> Result<SliTarget, Refusal> {
        Ok(SliTarget {
            namespace: call.key.namespace.clone(),
            target: CanaryName::parse(&settings.canary.target)
                .map_err(|e| Refusal::bad_request(e.to_string()))?,
            template: settings.canary.template.clone(),
            variables: TemplateVariables {
                service: settings
                    .canary
                    .service
                    .as_deref()
                    .map(CanaryName::parse)
                    .transpose()
                    .map_err(|e| Refusal::bad_request(e.to_string()))?,
                custom: settings.canary.variables.clone(),
            },
        })
    }

    /// Finds the analysis of this revision, or opens it after a preflight: the template
    /// renders, Prometheus answers, and the primary has traffic to compare against. An
    /// analysis opens with both arms' counters read at its start: the baseline of its
    /// first look.
    pub(super) async fn find_or_open(&self, call: &HookCall) -> Result<(Analysis, bool), Refusal> {
        // Metadata is validated on every call, even when the analysis already exists.
        let canary = self.resolve_settings(call)?;
        if let Some(existing) = self.store.find_analysis(&call.key).await? {
            if existing.controller != call.controller {
                // One revision, two controllers: both would act on one verdict.
                return Err(Refusal::conflict(format!(
                    "analysis {} of {} belongs to {}, not {}",
                    existing.id,
                    call.key,
                    existing.controller.title(),
                    call.controller.title()
                )));
            }
            return Ok((existing, false));
        }
        let mut settings = AnalysisSettings {
            slo_boundary_s: canary.slo_p95_s,
            canary,
            plan: None,
            boundary_s: None,
        };
        let target = self.sli_target(&settings, call)?;
        self.sli.check_template(&target)?;
        let now = now_millis();
        let defaults = &self.config.defaults;
        let (history, baseline) = tokio::try_join!(
            self.sli
                .primary_history(&target, now, defaults.lookback, defaults.lookback_step),
            self.sli.counters(&target, now),
        )?;
        if history.iter().map(|h| h.requests).sum::<f64>() < 1.0 {
            let primary = match call.controller {
                Controller::Flagger => format!("the primary {}-primary", target.target),
                Controller::Argo => format!(
                    "the stable pods of {} (template {})",
                    target.target, target.template
                ),
            };
            return Err(Refusal::dependency(format!(
                "{primary} served no requests in the last {}: nothing to compare the canary against",
                humantime::format_duration(defaults.lookback)
            )));
        }
        let plan = judging::plan_from(&settings.canary, &history)
            .map_err(|e| Refusal::bad_request(format!("metadata: {e}")))?;
        settings.plan = Some(plan);
        let new = NewAnalysis {
            key: call.key.clone(),
            settings,
            started_at: now,
            baseline: Some(super::look::encode_counters(&baseline)?),
        };
        Ok(self.store.open_analysis(&new).await?)
    }

    /// Finds the analysis of this revision without opening one (the metadata is still
    /// checked).
    pub(super) async fn existing(&self, call: &HookCall) -> Result<Option<Analysis>, Refusal> {
        self.resolve_settings(call)?;
        Ok(self.store.find_analysis(&call.key).await?)
    }
}

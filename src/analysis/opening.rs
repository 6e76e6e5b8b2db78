//! Opening an analysis: the call's metadata resolved into settings, the preflight, the
//! judge's plan from the primary's history, and the analysis of a revision found again
//! on later calls.

use super::{judging, settings, Analyst, HookCall, Refusal};
use crate::domain::{
    now_millis, AnalysisSettings, CanaryName, CanarySettings, Controller, Millis, Namespace,
};
use crate::sli::templates::TemplateVariables;
use crate::sli::{Counters, SliTarget};
use crate::store::{Analysis, NewAnalysis};

/// What the SLI source reads for an analysis of `settings` in `namespace` (the hooks'
/// and a window backtest's).
pub(super) fn sli_target_in(
    settings: &AnalysisSettings,
    namespace: &Namespace,
) -> Result<SliTarget, Refusal> {
    Ok(SliTarget {
        namespace: namespace.clone(),
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
        sli_target_in(settings, &call.key.namespace)
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
        let now = now_millis();
        let baseline = self.open_at(&mut settings, &target, now).await?;
        let new = NewAnalysis {
            key: call.key.clone(),
            settings,
            started_at: now,
            baseline: Some(super::look::encode_counters(&baseline)?),
        };
        Ok(self.store.open_analysis(&new).await?)
    }

    /// What opening an analysis at `at` reads: the template renders, the primary had
    /// traffic in the look-back before `at`, the plan made from that history (set on
    /// `settings`), and both arms' counters at `at` (the first look's baseline). The
    /// hooks open at the call's time; a window backtest at the window's start.
    pub(super) async fn open_at(
        &self,
        settings: &mut AnalysisSettings,
        target: &SliTarget,
        at: Millis,
    ) -> Result<Counters, Refusal> {
        self.sli.check_template(target)?;
        let defaults = &self.config.defaults;
        let (history, baseline) = tokio::try_join!(
            self.sli
                .primary_history(target, at, defaults.lookback, defaults.lookback_step),
            self.sli.counters(target, at),
        )?;
        if history.iter().map(|h| h.requests).sum::<f64>() < 1.0 {
            let primary = match settings.canary.controller {
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
        Ok(baseline)
    }

    /// Finds the analysis of this revision without opening one (the metadata is still
    /// checked).
    pub(super) async fn existing(&self, call: &HookCall) -> Result<Option<Analysis>, Refusal> {
        self.resolve_settings(call)?;
        Ok(self.store.find_analysis(&call.key).await?)
    }
}

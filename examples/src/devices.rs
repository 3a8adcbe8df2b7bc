//! Sub-orchestrations: provision many devices in parallel, one
//! DeviceProvisioningOrchestration each, every one waiting for its device's
//! DownloadCompletedAck event.

use perdure::{Client, Failure, OrchestrationContext, Registry, RetryPolicy};
use std::time::Duration;

pub fn register(r: &mut Registry, client: Client) {
    r.add_activity("GetNewDeviceIds", |_ctx, count: u32| async move {
        Ok((1..=count)
            .map(|i| format!("device-{i:03}"))
            .collect::<Vec<_>>())
    });
    r.add_activity(
        "CreateInstallationPackage",
        |_ctx, device_id: String| async move {
            Ok(format!(
                "https://packages.example/{device_id}.pkg?sas=signed"
            ))
        },
    );
    // Plays the device: told where its package is, it "downloads" it and
    // acknowledges by raising DownloadCompletedAck on the orchestration
    // before the activity returns. If the worker dies after the raise, the
    // activity runs again and acknowledges again; the extra event is never
    // waited for, so nothing is lost or done twice.
    r.add_activity(
        "SendPackageUrlToDevice",
        move |ctx, (device_id, _url): (String, String)| {
            let client = client.clone();
            let instance_id = ctx.instance_id().to_string();
            async move {
                client
                    .raise_event(&instance_id, "DownloadCompletedAck", true)
                    .await
                    .map_err(|e| Failure::new("DeviceUnreachable", e.to_string()))?;
                Ok(format!("package URL sent to {device_id}"))
            }
        },
    );
    r.add_activity("ActivateDevice", |_ctx, device_id: String| async move {
        Ok(format!("{device_id} provisioned"))
    });
    r.add_orchestrator(
        "DeviceProvisioningOrchestration",
        |ctx: OrchestrationContext| async move {
            let device_id: String = ctx.get_input()?;
            let url: String = ctx
                .call_activity("CreateInstallationPackage", &device_id)
                .await?;
            // Reaching a device is a network call that can fail for a
            // moment; a few retries ride out a blip.
            let retry = RetryPolicy::new(Duration::from_millis(100), 5)
                .map_err(|e| Failure::new("BadRetryPolicy", e.to_string()))?
                .with_handle(|f| f.error_type == "DeviceUnreachable");
            ctx.call_activity_with_retry::<String>(
                "SendPackageUrlToDevice",
                &retry,
                (&device_id, &url),
            )
            .await?;
            let acked: bool = ctx.wait_for_external_event("DownloadCompletedAck").await?;
            if !acked {
                return Err(Failure::new(
                    "DeviceRejected",
                    format!("{device_id} refused the package"),
                ));
            }
            let done: String = ctx.call_activity("ActivateDevice", &device_id).await?;
            Ok(done)
        },
    );
    r.add_orchestrator(
        "ProvisionNewDevices",
        |ctx: OrchestrationContext| async move {
            let count: u32 = ctx.get_input()?;
            let ids: Vec<String> = ctx.call_activity("GetNewDeviceIds", count).await?;
            let me = ctx.instance_id();
            let tasks = ids.iter().map(|d| {
                let child_id = format!("{me}-{d}");
                ctx.call_sub_orchestrator_with_id::<String>(
                    "DeviceProvisioningOrchestration",
                    Some(&child_id),
                    d,
                )
            });
            let results = ctx.when_all(tasks).await;
            results
                .into_iter()
                .collect::<Result<Vec<String>, _>>()
                .map_err(Into::into)
        },
    );
}

//! Conformance checks for orchestration tags: kept from the start event
//! on the instance row, replaced by a commit's update, given to an instance
//! a start message creates, and returned by listing.

use super::{commit_for, create, fetch_until, LEASE};
use crate::*;
use perdure_core::{EventKind, HistoryEvent, Tags};
use std::time::Duration;

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn tagged(mut req: CreateInstance, t: &Tags) -> CreateInstance {
    if let EventKind::ExecutionStarted { tags, .. } = &mut req.start_event.kind {
        *tags = t.clone();
    }
    req
}

/// Tags written at creation and by a commit are read back exactly; an
/// untagged instance reads back no tags.
pub async fn check_tags<S: Store>(s: &S) {
    let first = tags(&[("env", "test"), ("owner", "a \"quoted\" name"), ("", "")]);
    s.create_instance(tagged(create("g"), &first))
        .await
        .expect("create");
    s.create_instance(create("plain")).await.expect("create");
    let r = s.get_instance("g").await.expect("get").expect("exists");
    assert_eq!(r.tags, first, "tags of the start event are kept on the row");
    let plain = s.get_instance("plain").await.expect("get").expect("exists");
    assert!(plain.tags.is_empty(), "no tags read back as none");
    let listed = s
        .list_instances(&InstanceQuery::default())
        .await
        .expect("list");
    let row = listed
        .instances
        .iter()
        .find(|r| r.instance_id == "g")
        .expect("listed");
    assert_eq!(row.tags, first, "listing returns the tags");

    let item = loop {
        let item = fetch_until(s, LEASE, Duration::from_secs(5))
            .await
            .expect("work");
        if item.instance.instance_id == "g" {
            break item;
        }
        let k = commit_for(&item, Vec::new());
        s.commit_orchestration(k).await.expect("commit plain");
    };
    assert_eq!(item.instance.tags, first, "a fetched item carries the tags");
    let second = tags(&[("generation", "2")]);
    let mut k = commit_for(
        &item,
        vec![HistoryEvent::new(
            chrono::Utc::now(),
            EventKind::OrchestratorStarted,
        )],
    );
    k.update.tags = second.clone();
    s.commit_orchestration(k).await.expect("commit");
    let r = s.get_instance("g").await.expect("get").expect("exists");
    assert_eq!(r.tags, second, "a commit's update replaces the tags");
}

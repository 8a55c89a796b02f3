//! API keys in the store: only hashes kept, found by hash or id while live, names unique
//! among live keys, revoked by id or name; and the per-owner bound on queued jobs.

use std::sync::Arc;

use darkroom::auth::{KeyLimits, NewKey, Role, keys};
use darkroom::store::{Store, StoreError};

use super::{at, create, new_job};

pub async fn keys_are_found_by_hash_while_live_and_revoked_by_id_or_name(store: Arc<dyn Store>) {
    assert_eq!(store.count_live_keys().await.unwrap(), 0);
    let limits = KeyLimits {
        requests_per_minute: Some(30),
        max_streams: Some(2),
        ..KeyLimits::default()
    };
    let alice = NewKey::generate("alice", Role::User, limits, at(0));
    let ops = NewKey::generate("ops", Role::Admin, KeyLimits::default(), at(1));
    store.create_api_key(&alice.record).await.unwrap();
    store.create_api_key(&ops.record).await.unwrap();
    assert_eq!(store.count_live_keys().await.unwrap(), 2);

    let found = store
        .live_key_by_hash(&keys::hash_key(&alice.secret))
        .await
        .unwrap()
        .expect("found by the hash of the key");
    assert_eq!(found, alice.record);
    assert_eq!(found.limits, limits);
    let by_id = store.live_key(&ops.record.id).await.unwrap().unwrap();
    assert_eq!(by_id.role, Role::Admin);
    assert!(
        store
            .live_key_by_hash(&keys::hash_key("drk_wrong"))
            .await
            .unwrap()
            .is_none()
    );

    let taken = NewKey::generate("alice", Role::User, KeyLimits::default(), at(2));
    assert!(matches!(
        store.create_api_key(&taken.record).await,
        Err(StoreError::KeyNameTaken { name }) if name == "alice"
    ));

    let revoked = store.revoke_api_key("alice", at(3)).await.unwrap();
    assert_eq!(revoked.id, alice.record.id);
    assert_eq!(revoked.revoked_at, Some(at(3)));
    assert!(
        store
            .live_key_by_hash(&alice.record.hash)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.live_key(&alice.record.id).await.unwrap().is_none());
    assert!(matches!(
        store.revoke_api_key(&alice.record.id, at(4)).await,
        Err(StoreError::KeyNotFound { .. })
    ));
    store.revoke_api_key(&ops.record.id, at(4)).await.unwrap();
    assert_eq!(store.count_live_keys().await.unwrap(), 0);

    // A revoked key's name may be given again; the listing keeps both, oldest first.
    store.create_api_key(&taken.record).await.unwrap();
    let all = store.api_keys().await.unwrap();
    let names: Vec<&str> = all.iter().map(|key| key.name.as_str()).collect();
    assert_eq!(names, ["alice", "ops", "alice"]);
    assert!(all[0].revoked_at.is_some() && all[2].revoked_at.is_none());
}

pub async fn an_owner_may_hold_only_its_bound_of_queued_jobs(store: Arc<dyn Store>) {
    let job = |minutes, owner: Option<&str>| {
        let mut job = new_job(minutes);
        job.owner = owner.map(str::to_owned);
        job.max_queued_for_owner = Some(2);
        job
    };
    create(&store, job(0, Some("key_a"))).await;
    create(&store, job(1, Some("key_a"))).await;
    assert!(matches!(
        store.create_job(job(2, Some("key_a"))).await,
        Err(StoreError::OwnerQueueFull { queued: 2 })
    ));
    // Others, the anonymous included, have their own bound.
    create(&store, job(3, Some("key_b"))).await;
    create(&store, job(4, None)).await;
    create(&store, job(5, None)).await;
    assert!(matches!(
        store.create_job(job(6, None)).await,
        Err(StoreError::OwnerQueueFull { .. })
    ));
}

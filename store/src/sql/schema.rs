//! One `table!` set for both backends: portable types only (Text ids, BigInt epoch ms).

diesel::table! {
    tenants (id) {
        id -> Text,
        name -> Text,
        created_at -> BigInt,
        defaults -> Nullable<Text>,
        callback_secret -> Nullable<Text>,
        retention_days -> Nullable<BigInt>,
        limits -> Nullable<Text>,
        suspended_at -> Nullable<BigInt>,
        deleted_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        tenant_id -> Text,
        hash -> Text,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        name -> Nullable<Text>,
        role -> Text,
        expires_at -> Nullable<BigInt>,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    console_sessions (id) {
        id -> Text,
        tenant_id -> Nullable<Text>,
        key_id -> Nullable<Text>,
        role -> Text,
        csrf -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    messages (id) {
        id -> Text,
        tenant_id -> Text,
        to_number -> Text,
        from_addr -> Nullable<Text>,
        body -> Text,
        channels -> Text,
        ttl_secs -> Nullable<BigInt>,
        metadata -> Nullable<Text>,
        callback_url -> Nullable<Text>,
        status -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        send_at -> Nullable<BigInt>,
        reason -> Nullable<Text>,
        content -> Nullable<Text>,
        user_id -> Nullable<Text>,
        plan -> Nullable<Text>,
        fallback -> Nullable<Text>,
        to_hash -> Nullable<Text>,
        shredded_at -> Nullable<BigInt>,
        priority -> Integer,
        alert_key -> Nullable<Text>,
        alert_status -> Nullable<Text>,
        callback_events -> Nullable<Text>,
        traffic_type -> Nullable<Text>,
        twilio -> Nullable<Text>,
        deleted_at -> Nullable<BigInt>,
        smpp -> Nullable<Text>,
    }
}

diesel::table! {
    smpp_accounts (system_id) {
        system_id -> Text,
        tenant_id -> Text,
        password_hash -> Text,
        networks -> Text,
        max_binds -> Integer,
        submit_window -> Integer,
        throughput -> Integer,
        read_receipts -> Integer,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    smpp_outbox (id) {
        id -> BigInt,
        system_id -> Text,
        dedupe -> Text,
        kind -> Text,
        payload -> Text,
        created_at -> BigInt,
        locked_until -> BigInt,
    }
}

diesel::table! {
    smpp_parts (system_id, source_addr, dest_addr, ref_num, total, seq) {
        system_id -> Text,
        source_addr -> Text,
        dest_addr -> Text,
        ref_num -> Integer,
        total -> Integer,
        seq -> Integer,
        message_id -> Text,
        data_coding -> Integer,
        body -> Text,
        registered_delivery -> Integer,
        received_at -> BigInt,
    }
}

diesel::table! {
    twilio_accounts (tenant_id) {
        tenant_id -> Text,
        account_sid -> Text,
        auth_token -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    twilio_numbers (tenant_id, phone_number) {
        tenant_id -> Text,
        phone_number -> Text,
        sms_url -> Nullable<Text>,
        sms_method -> Text,
        friendly_name -> Nullable<Text>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    attempts (id) {
        id -> Text,
        message_id -> Text,
        attempt_no -> Integer,
        channel -> Text,
        status -> Text,
        user_ref -> Integer,
        raw_status -> Nullable<Text>,
        error_code -> Nullable<Text>,
        error_permanent -> Nullable<Bool>,
        parts -> Integer,
        sending_since -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    attempt_parts (provider_id) {
        provider_id -> Text,
        attempt_id -> Text,
        part_no -> Integer,
        status -> Text,
        raw_status -> Nullable<Text>,
        error_code -> Nullable<Text>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    events (seq) {
        seq -> BigInt,
        message_id -> Text,
        tenant_id -> Text,
        kind -> Text,
        status -> Text,
        attempt_no -> Nullable<Integer>,
        channel -> Nullable<Text>,
        detail -> Nullable<Text>,
        at -> BigInt,
    }
}

diesel::table! {
    idempotency_keys (tenant_id, key) {
        tenant_id -> Text,
        key -> Text,
        request_hash -> Text,
        status_code -> Integer,
        body -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    orphan_receipts (provider_id, status) {
        provider_id -> Text,
        status -> Text,
        raw_status -> Text,
        error_code -> Nullable<Text>,
        user_ref -> Nullable<Integer>,
        recipient -> Nullable<Text>,
        received_at -> BigInt,
        submitted_at -> Nullable<BigInt>,
        text_mac -> Nullable<Text>,
        text_len -> Nullable<Integer>,
    }
}

diesel::table! {
    jobs (id) {
        id -> BigInt,
        queue -> Text,
        payload -> Text,
        available_at -> BigInt,
        locked_until -> BigInt,
        deliveries -> Integer,
        created_at -> BigInt,
        priority -> Integer,
    }
}

diesel::table! {
    inbound_messages (id) {
        id -> Text,
        tenant_id -> Nullable<Text>,
        from_number -> Text,
        to_addr -> Text,
        body -> Text,
        parts -> Integer,
        connector -> Text,
        keyword -> Nullable<Text>,
        received_at -> BigInt,
        payload -> Nullable<Text>,
        from_hash -> Nullable<Text>,
        provider_id -> Nullable<Text>,
        channel -> Text,
    }
}

diesel::table! {
    inbound_parts (from_number, to_addr, ref_num, total, seq) {
        from_number -> Text,
        to_addr -> Text,
        ref_num -> Integer,
        total -> Integer,
        seq -> Integer,
        connector -> Text,
        body -> Text,
        received_at -> BigInt,
        channel -> Text,
    }
}

diesel::table! {
    opt_outs (tenant_id, recipient, sender) {
        tenant_id -> Text,
        recipient -> Text,
        sender -> Text,
        source -> Text,
        created_at -> BigInt,
        number -> Nullable<Text>,
    }
}

diesel::table! {
    bind_leases (bind_id) {
        bind_id -> Text,
        holder -> Text,
        expires_at -> BigInt,
        status -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_events (source, event_id) {
        source -> Text,
        event_id -> Text,
        received_at -> BigInt,
    }
}

diesel::table! {
    rbm_launch_states (agent, region) {
        agent -> Text,
        region -> Text,
        state -> Text,
        previous -> Nullable<Text>,
        at -> BigInt,
    }
}

diesel::table! {
    devices (id) {
        id -> Text,
        tenant_id -> Text,
        recipient -> Nullable<Text>,
        user_id -> Nullable<Text>,
        public_key -> Text,
        aead -> Text,
        platform -> Text,
        label -> Nullable<Text>,
        token_hash -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    app_inbox (seq) {
        seq -> BigInt,
        device_id -> Text,
        message_id -> Text,
        attempt_id -> Text,
        envelope -> Text,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        acked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    fallback_timers (attempt_id) {
        attempt_id -> Text,
        message_id -> Text,
        due_at -> BigInt,
        locked_until -> BigInt,
        tries -> Integer,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        tenant_id -> Text,
        url -> Text,
        events -> Text,
        secret -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> BigInt,
        tenant_id -> Text,
        endpoint_id -> Nullable<Text>,
        url -> Text,
        event_type -> Text,
        message_id -> Nullable<Text>,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        next_at -> BigInt,
        locked_until -> BigInt,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    webhook_cursor (name) {
        name -> Text,
        seq -> BigInt,
        pending -> Text,
        holder -> Text,
        lease_until -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    audit_outbox (id) {
        id -> BigInt,
        tenant_id -> Text,
        at -> BigInt,
        kind -> Text,
        subject -> Nullable<Text>,
        data -> Text,
    }
}

diesel::table! {
    audit_entries (tenant_id, seq) {
        tenant_id -> Text,
        seq -> BigInt,
        at -> BigInt,
        kind -> Text,
        subject -> Nullable<Text>,
        data -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    audit_heads (tenant_id) {
        tenant_id -> Text,
        seq -> BigInt,
        hash -> Text,
        checkpointed_seq -> BigInt,
    }
}

diesel::table! {
    audit_checkpoints (tenant_id, seq) {
        tenant_id -> Text,
        seq -> BigInt,
        head_hash -> Text,
        at -> BigInt,
        key_id -> Text,
        signature -> Text,
    }
}

diesel::table! {
    subject_keys (tenant_id, subject) {
        tenant_id -> Text,
        subject -> Text,
        key_id -> Text,
        wrapped -> Text,
        created_at -> BigInt,
    }
}

diesel::joinable!(attempts -> messages (message_id));
diesel::table! {
    templates (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        body -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    hooks (id) {
        id -> Text,
        tenant_id -> Text,
        token_hash -> Text,
        config -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    senders (sender) {
        sender -> Text,
        display -> Text,
        tenant_id -> Text,
        is_default -> Bool,
        created_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    tenants,
    senders,
    api_keys,
    console_sessions,
    messages,
    twilio_accounts,
    twilio_numbers,
    smpp_accounts,
    smpp_outbox,
    smpp_parts,
    attempts,
    attempt_parts,
    events,
    idempotency_keys,
    orphan_receipts,
    jobs,
    templates,
    hooks,
    inbound_messages,
    inbound_parts,
    opt_outs,
    bind_leases,
    webhook_events,
    rbm_launch_states,
    devices,
    app_inbox,
    fallback_timers,
    webhook_endpoints,
    webhook_deliveries,
    webhook_cursor,
    audit_outbox,
    audit_entries,
    audit_heads,
    audit_checkpoints,
    subject_keys,
);

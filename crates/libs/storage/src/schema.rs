// @generated automatically by Diesel CLI.

diesel::table! {
    account_directions (id) {
        id -> Uuid,
        user_account_id -> Uuid,
        ad_account_id -> Nullable<Uuid>,
        name -> Text,
        capi_enabled -> Bool,
        capi_source -> Text,
        capi_crm_type -> Nullable<Text>,
        capi_interest_fields -> Jsonb,
        capi_qualified_fields -> Jsonb,
        capi_scheduled_fields -> Jsonb,
        pixel_id -> Nullable<Text>,
        whatsapp_business_account_id -> Nullable<Text>,
        event_name_interest -> Text,
        event_name_qualified -> Text,
        event_name_scheduled -> Text,
        test_event_code -> Nullable<Text>,
        bot_enabled -> Bool,
        bot_prompt -> Nullable<Text>,
        qualification_prompt -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        ldu_enabled -> Bool,
        ldu_country -> Int4,
        ldu_state -> Int4,
        capi_crm_no_dialog -> Text,
        event_name_interest_other -> Text,
        event_name_qualified_other -> Text,
        event_name_scheduled_other -> Text,
        capi_purchase_rule -> Nullable<Jsonb>,
    }
}

diesel::table! {
    ad_accounts (id) {
        id -> Uuid,
        user_account_id -> Uuid,
        name -> Text,
        meta_ad_account_id -> Nullable<Text>,
        access_token -> Nullable<Text>,
        created_at -> Timestamptz,
        app_secret -> Nullable<Text>,
    }
}

diesel::table! {
    ad_spend (id) {
        id -> Int8,
        ad_account_id -> Uuid,
        spend_date -> Date,
        spend -> Numeric,
        currency -> Text,
        synced_at -> Timestamptz,
        campaign_id -> Text,
        campaign_name -> Nullable<Text>,
        source -> Text,
        adset_id -> Text,
        adset_name -> Nullable<Text>,
        ad_id -> Text,
        ad_name -> Nullable<Text>,
    }
}

diesel::table! {
    ad_spend_syncs (ad_account_id, sync_date) {
        ad_account_id -> Uuid,
        sync_date -> Date,
        status -> Text,
        attempts -> Int4,
        lease_until -> Nullable<Timestamptz>,
        next_at -> Nullable<Timestamptz>,
        rows_synced -> Nullable<Int4>,
        error -> Nullable<Text>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        user_account_id -> Uuid,
        name -> Text,
        key_hash -> Text,
        key_prefix -> Text,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    bot_replies (id) {
        id -> Int8,
        dialog_id -> Uuid,
        seq -> Int8,
        status -> Text,
        reason -> Nullable<Text>,
        reply_text -> Nullable<Text>,
        message_id -> Nullable<Text>,
        prompt_tokens -> Int4,
        completion_tokens -> Int4,
        response_ms -> Nullable<Int4>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        lease_until -> Nullable<Timestamptz>,
        attempts -> Int4,
    }
}

diesel::table! {
    capi_deliveries (id) {
        id -> Int8,
        dialog_id -> Uuid,
        event_level -> Int2,
        event_id -> Text,
        event_time -> Timestamptz,
        status -> Text,
        attempts -> Int4,
        lease_until -> Nullable<Timestamptz>,
        claimed_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        sending_at -> Nullable<Timestamptz>,
        sending_by -> Nullable<Text>,
        order_ref -> Text,
        purchase_value -> Nullable<Numeric>,
        purchase_currency -> Nullable<Text>,
    }
}

diesel::table! {
    capi_events_log (id) {
        id -> Int8,
        dialog_id -> Nullable<Uuid>,
        direction_id -> Nullable<Uuid>,
        user_account_id -> Nullable<Uuid>,
        event_level -> Int2,
        event_name -> Text,
        event_id -> Text,
        pixel_id -> Nullable<Text>,
        status -> Text,
        attempt -> Int4,
        reason -> Nullable<Text>,
        request -> Nullable<Jsonb>,
        response -> Nullable<Jsonb>,
        http_status -> Nullable<Int4>,
        error_message -> Nullable<Text>,
        duration_ms -> Nullable<Int4>,
        created_at -> Timestamptz,
        batch_id -> Nullable<Uuid>,
        batch_size -> Nullable<Int4>,
        fbtrace_id -> Nullable<Text>,
    }
}

diesel::table! {
    conversation_reports (id) {
        id -> Uuid,
        user_account_id -> Uuid,
        report_date -> Date,
        report_text -> Text,
        stats -> Jsonb,
        directions_data -> Jsonb,
        capi_distribution -> Nullable<Jsonb>,
        capi_source_used -> Nullable<Bool>,
        capi_direction_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        language -> Text,
        telegram_status -> Text,
        telegram_parts_sent -> Int4,
        telegram_attempts -> Int4,
        telegram_next_at -> Timestamptz,
        telegram_lease_until -> Nullable<Timestamptz>,
        telegram_error -> Nullable<Text>,
        telegram_sent_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    crm_changes (id) {
        id -> Int8,
        connection_id -> Uuid,
        entity -> Text,
        action -> Text,
        entity_id -> Text,
        change_key -> Text,
        change -> Jsonb,
        received_at -> Timestamptz,
        evaluated_at -> Nullable<Timestamptz>,
        outcome -> Nullable<Jsonb>,
    }
}

diesel::table! {
    crm_connections (id) {
        id -> Uuid,
        user_account_id -> Uuid,
        crm_type -> Text,
        base_url -> Text,
        access_token -> Nullable<Text>,
        webhook_secret -> Nullable<Text>,
        default_region -> Text,
        created_at -> Timestamptz,
        account_subdomain -> Nullable<Text>,
        account_id -> Nullable<Text>,
        member_id -> Nullable<Text>,
        application_token -> Nullable<Text>,
        refresh_token -> Nullable<Text>,
        token_expires_at -> Nullable<Timestamptz>,
        oauth_client_id -> Nullable<Text>,
        oauth_client_secret -> Nullable<Text>,
        oauth_redirect_uri -> Nullable<Text>,
        token_refreshed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    crm_oauth_states (state_hash) {
        state_hash -> Text,
        session_hash -> Text,
        user_account_id -> Uuid,
        crm_type -> Text,
        base_url -> Text,
        client_id -> Text,
        client_secret -> Text,
        redirect_uri -> Text,
        default_region -> Text,
        application_token -> Nullable<Text>,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    crm_request_pace (connection_id) {
        connection_id -> Uuid,
        next_at -> Timestamptz,
    }
}

diesel::table! {
    dashboard_sessions (token_hash) {
        token_hash -> Text,
        user_account_id -> Uuid,
        generation -> Int4,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        role -> Text,
        link_id -> Text,
    }
}

diesel::table! {
    dashboard_sign_ins (nonce) {
        nonce -> Text,
        user_account_id -> Uuid,
        used_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    dialog_analysis (id) {
        id -> Uuid,
        instance_name -> Text,
        contact_key -> Text,
        contact_phone -> Nullable<Text>,
        contact_lid -> Nullable<Text>,
        contact_name -> Nullable<Text>,
        lead_id -> Nullable<Uuid>,
        direction_id -> Nullable<Uuid>,
        incoming_count -> Int4,
        outgoing_count -> Int4,
        first_message -> Nullable<Timestamptz>,
        last_message -> Nullable<Timestamptz>,
        ctwa_clid -> Nullable<Text>,
        from_ad -> Bool,
        ad_context -> Nullable<Jsonb>,
        interest_level -> Nullable<Text>,
        funnel_stage -> Nullable<Text>,
        qualification_reason -> Nullable<Text>,
        analyzed_at -> Nullable<Timestamptz>,
        buffer_seq -> Int8,
        buffer_flushed_seq -> Int8,
        capi_interest_sent -> Bool,
        capi_interest_sent_at -> Nullable<Timestamptz>,
        capi_interest_event_id -> Nullable<Text>,
        capi_qualified_sent -> Bool,
        capi_qualified_sent_at -> Nullable<Timestamptz>,
        capi_qualified_event_id -> Nullable<Text>,
        capi_scheduled_sent -> Bool,
        capi_scheduled_sent_at -> Nullable<Timestamptz>,
        capi_scheduled_event_id -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        analyzed_message_id -> Nullable<Int8>,
        analysis_status -> Nullable<Text>,
        llm_calls -> Int4,
        llm_prompt_tokens -> Int8,
        llm_completion_tokens -> Int8,
        ad_id -> Nullable<Text>,
    }
}

diesel::table! {
    dialog_messages (id) {
        id -> Int8,
        dialog_id -> Uuid,
        instance_name -> Text,
        message_id -> Text,
        from_me -> Bool,
        author -> Text,
        text -> Nullable<Text>,
        message_type -> Nullable<Text>,
        sent_at -> Timestamptz,
        received_at -> Timestamptz,
        response_ms -> Nullable<Int4>,
    }
}

diesel::table! {
    erasures (id) {
        id -> Int8,
        user_account_id -> Nullable<Uuid>,
        requested_by -> Text,
        erased -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    leads (id) {
        id -> Uuid,
        instance_name -> Text,
        contact_key -> Text,
        contact_phone -> Nullable<Text>,
        contact_lid -> Nullable<Text>,
        name -> Nullable<Text>,
        ctwa_clid -> Nullable<Text>,
        source_ad_id -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    llm_usage_daily (direction_id, day, purpose, shard) {
        direction_id -> Uuid,
        day -> Date,
        purpose -> Text,
        calls -> Int8,
        prompt_tokens -> Int8,
        completion_tokens -> Int8,
        shard -> Int2,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        message_id -> Uuid,
        routing_key -> Text,
        payload -> Jsonb,
        delay_ms -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    qualification_runs (id) {
        id -> Int8,
        dialog_id -> Uuid,
        direction_id -> Nullable<Uuid>,
        through_message_id -> Int8,
        model -> Text,
        status -> Text,
        error -> Nullable<Text>,
        result -> Nullable<Jsonb>,
        reached_level -> Nullable<Int2>,
        llm_calls -> Int4,
        prompt_tokens -> Int4,
        completion_tokens -> Int4,
        duration_ms -> Nullable<Int4>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    retention_marks (kind, scope) {
        kind -> Text,
        scope -> Text,
        blank_before -> Timestamptz,
    }
}

diesel::table! {
    setup_changes (id) {
        id -> Int8,
        at -> Timestamptz,
        user_account_id -> Nullable<Uuid>,
        actor -> Text,
        action -> Text,
        target -> Text,
        before -> Nullable<Jsonb>,
        after -> Nullable<Jsonb>,
    }
}

diesel::table! {
    user_accounts (id) {
        id -> Uuid,
        name -> Text,
        access_token -> Nullable<Text>,
        report_language -> Text,
        timezone -> Text,
        created_at -> Timestamptz,
        app_secret -> Nullable<Text>,
        telegram_bot_token -> Nullable<Text>,
        telegram_chat_id -> Nullable<Text>,
        dashboard_generation -> Int4,
        retain_messages_days -> Int4,
        retain_crm_bodies_days -> Int4,
    }
}

diesel::table! {
    whatsapp_phone_numbers (id) {
        id -> Uuid,
        instance_name -> Text,
        direction_id -> Nullable<Uuid>,
        phone_number -> Nullable<Text>,
        webhook_secret -> Text,
        evolution_api_key -> Nullable<Text>,
        evolution_api_version -> Text,
        created_at -> Timestamptz,
        bot_enabled -> Bool,
        user_account_id -> Nullable<Uuid>,
        channel -> Text,
        phone_number_id -> Nullable<Text>,
        waba_id -> Nullable<Text>,
        cloud_access_token -> Nullable<Text>,
        meta_app_id -> Nullable<Text>,
    }
}

diesel::joinable!(account_directions -> ad_accounts (ad_account_id));
diesel::joinable!(account_directions -> user_accounts (user_account_id));
diesel::joinable!(ad_accounts -> user_accounts (user_account_id));
diesel::joinable!(ad_spend -> ad_accounts (ad_account_id));
diesel::joinable!(ad_spend_syncs -> ad_accounts (ad_account_id));
diesel::joinable!(api_keys -> user_accounts (user_account_id));
diesel::joinable!(bot_replies -> dialog_analysis (dialog_id));
diesel::joinable!(capi_deliveries -> dialog_analysis (dialog_id));
diesel::joinable!(capi_events_log -> account_directions (direction_id));
diesel::joinable!(capi_events_log -> dialog_analysis (dialog_id));
diesel::joinable!(capi_events_log -> user_accounts (user_account_id));
diesel::joinable!(conversation_reports -> account_directions (capi_direction_id));
diesel::joinable!(conversation_reports -> user_accounts (user_account_id));
diesel::joinable!(crm_changes -> crm_connections (connection_id));
diesel::joinable!(crm_connections -> user_accounts (user_account_id));
diesel::joinable!(crm_oauth_states -> user_accounts (user_account_id));
diesel::joinable!(crm_request_pace -> crm_connections (connection_id));
diesel::joinable!(dashboard_sessions -> user_accounts (user_account_id));
diesel::joinable!(dashboard_sign_ins -> user_accounts (user_account_id));
diesel::joinable!(dialog_analysis -> account_directions (direction_id));
diesel::joinable!(dialog_analysis -> leads (lead_id));
diesel::joinable!(dialog_messages -> dialog_analysis (dialog_id));
diesel::joinable!(erasures -> user_accounts (user_account_id));
diesel::joinable!(llm_usage_daily -> account_directions (direction_id));
diesel::joinable!(qualification_runs -> account_directions (direction_id));
diesel::joinable!(qualification_runs -> dialog_analysis (dialog_id));
diesel::joinable!(setup_changes -> user_accounts (user_account_id));
diesel::joinable!(whatsapp_phone_numbers -> account_directions (direction_id));
diesel::joinable!(whatsapp_phone_numbers -> user_accounts (user_account_id));

diesel::allow_tables_to_appear_in_same_query!(
    account_directions,
    ad_accounts,
    ad_spend,
    ad_spend_syncs,
    api_keys,
    bot_replies,
    capi_deliveries,
    capi_events_log,
    conversation_reports,
    crm_changes,
    crm_connections,
    crm_oauth_states,
    crm_request_pace,
    dashboard_sessions,
    dashboard_sign_ins,
    dialog_analysis,
    dialog_messages,
    erasures,
    leads,
    llm_usage_daily,
    outbox,
    qualification_runs,
    retention_marks,
    setup_changes,
    user_accounts,
    whatsapp_phone_numbers,
);

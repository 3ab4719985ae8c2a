// The tables written through diesel's query builder (most queries are SQL).

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
        batch_id -> Nullable<Uuid>,
        batch_size -> Nullable<Int4>,
        fbtrace_id -> Nullable<Text>,
    }
}

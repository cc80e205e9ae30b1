/* Versioned migrations and the demo schema (see migrate.h). Blocking libpq is allowed here:
 * this runs at startup on the main thread, before the worker loops start, so PQconnectdb may
 * resolve host names itself (a blocking getaddrinfo); the loops' pools resolve theirs off the
 * loop (src/db/resolve.c). */
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "db/migrate.h"

typedef struct {
    int version;
    const char *name;
    const char *sql;
    /* An optional migration that fails (e.g. the admin role may not create schemas or
     * roles) is rolled back, logged and left unrecorded, so it is retried at the next start;
     * startup goes on without the feature it brings. */
    bool optional;
    const char *const *parts; /* more SQL run after sql, in order; NULL-terminated */
} migration_t;

/* Migration 10: the auth service's storage (docs/auth.md). Schema auth with users,
 * identities, sessions and refresh tokens; Supabase's auth.uid()/role()/email()/jwt(); and
 * the SECURITY DEFINER functions the service calls as the NOLOGIN role strata_auth (one
 * statement per HTTP call; EXECUTE revoked from public). Split into parts only because C
 * string literals are limited to 4095 bytes. */
static const char *const AUTH_SQL[] = {
    "do $$ begin\n"
    "  if not exists (select from pg_roles where rolname = 'anon') then create role anon nologin; end if;\n"
    "  if not exists (select from pg_roles where rolname = 'authenticated') then create role authenticated nologin; end if;\n"
    "  if not exists (select from pg_roles where rolname = 'service_role') then create role service_role nologin; end if;\n"
    "  if not exists (select from pg_roles where rolname = 'strata_auth') then create role strata_auth nologin; end if;\n"
    "end $$;\n"
    "create schema if not exists auth;\n"
    "comment on schema auth is 'Strata auth service: users, identities, sessions, refresh tokens';\n"
    "revoke all on schema auth from public;\n"
    "grant usage on schema auth to anon, authenticated, service_role, strata_auth;\n"
    "create table auth.users (\n"
    "  id uuid primary key default gen_random_uuid(),\n"
    "  aud text not null default 'authenticated',\n"
    "  role text not null default 'authenticated',\n"
    "  email text not null check (length(email) between 3 and 320 and position('@' in email) > 1),\n"
    "  encrypted_password text,\n"
    "  email_confirmed_at timestamptz,\n"
    "  last_sign_in_at timestamptz,\n"
    "  raw_app_meta_data jsonb not null default '{}' check (jsonb_typeof(raw_app_meta_data) = 'object'),\n"
    "  raw_user_meta_data jsonb not null default '{}' check (jsonb_typeof(raw_user_meta_data) = 'object'),\n"
    "  created_at timestamptz not null default now(),\n"
    "  updated_at timestamptz not null default now());\n"
    "create unique index users_email_key on auth.users (lower(email));\n"
    "create table auth.identities (\n"
    "  id uuid primary key default gen_random_uuid(),\n"
    "  user_id uuid not null references auth.users(id) on delete cascade,\n"
    "  provider text not null,\n"
    "  provider_id text not null,\n"
    "  identity_data jsonb not null default '{}' check (jsonb_typeof(identity_data) = 'object'),\n"
    "  last_sign_in_at timestamptz,\n"
    "  created_at timestamptz not null default now(),\n"
    "  updated_at timestamptz not null default now(),\n"
    "  unique (provider, provider_id));\n",
    "create index identities_user_id_idx on auth.identities (user_id);\n"
    "create table auth.sessions (\n"
    "  id uuid primary key default gen_random_uuid(),\n"
    "  user_id uuid not null references auth.users(id) on delete cascade,\n"
    "  aal text not null default 'aal1' check (aal in ('aal1', 'aal2', 'aal3')),\n"
    "  ip text,\n"
    "  user_agent text,\n"
    "  refreshed_at timestamptz,\n"
    "  created_at timestamptz not null default now(),\n"
    "  updated_at timestamptz not null default now());\n"
    "create index sessions_user_id_idx on auth.sessions (user_id);\n"
    "create table auth.refresh_tokens (\n"
    "  id bigint generated always as identity primary key,\n"
    "  token_hash text not null unique check (token_hash ~ '^[0-9a-f]{64}$'),\n"
    "  session_id uuid not null references auth.sessions(id) on delete cascade,\n"
    "  user_id uuid not null references auth.users(id) on delete cascade,\n"
    "  parent bigint references auth.refresh_tokens(id) on delete set null,\n"
    "  revoked boolean not null default false,\n"
    "  created_at timestamptz not null default now(),\n"
    "  updated_at timestamptz not null default now());\n"
    "create index refresh_tokens_session_id_idx on auth.refresh_tokens (session_id);\n"
    "revoke all on all tables in schema auth from public;\n"
    "create function auth.set_updated_at() returns trigger language plpgsql as $f$\n"
    "begin new.updated_at := now(); return new; end $f$;\n"
    "create trigger users_updated_at before update on auth.users for each row execute function auth.set_updated_at();\n"
    "create trigger identities_updated_at before update on auth.identities for each row execute function auth.set_updated_at();\n",
    "create trigger sessions_updated_at before update on auth.sessions for each row execute function auth.set_updated_at();\n"
    "create trigger refresh_tokens_updated_at before update on auth.refresh_tokens for each row execute function auth.set_updated_at();\n"
    "create function auth.uid() returns uuid language sql stable as $f$\n"
    "  select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),\n"
    "                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid $f$;\n"
    "create function auth.role() returns text language sql stable as $f$\n"
    "  select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),\n"
    "                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text $f$;\n"
    "create function auth.email() returns text language sql stable as $f$\n"
    "  select coalesce(nullif(current_setting('request.jwt.claim.email', true), ''),\n"
    "                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email'))::text $f$;\n"
    "create function auth.jwt() returns jsonb language sql stable as $f$\n"
    "  select coalesce(nullif(current_setting('request.jwt.claim', true), ''),\n"
    "                  nullif(current_setting('request.jwt.claims', true), ''))::jsonb $f$;\n"
    "grant execute on function auth.uid(), auth.role(), auth.email(), auth.jwt() to anon, authenticated, service_role;\n"
    "create function auth.user_json(u auth.users) returns jsonb language sql stable set search_path = '' as $f$\n"
    "  select jsonb_build_object(\n"
    "    'id', u.id, 'aud', u.aud, 'role', u.role, 'email', u.email,\n"
    "    'email_confirmed_at', u.email_confirmed_at, 'phone', '', 'confirmed_at', u.email_confirmed_at,\n"
    "    'last_sign_in_at', u.last_sign_in_at,\n"
    "    'app_metadata', u.raw_app_meta_data, 'user_metadata', u.raw_user_meta_data,\n"
    "    'identities', coalesce((select jsonb_agg(jsonb_build_object(\n"
    "        'identity_id', i.id, 'id', i.provider_id, 'user_id', i.user_id,\n"
    "        'identity_data', i.identity_data, 'provider', i.provider,\n"
    "        'last_sign_in_at', i.last_sign_in_at, 'created_at', i.created_at,\n"
    "        'updated_at', i.updated_at, 'email', i.identity_data ->> 'email') order by i.created_at)\n"
    "      from auth.identities i where i.user_id = u.id), '[]'::jsonb),\n"
    "    'created_at', u.created_at, 'updated_at', u.updated_at, 'is_anonymous', false) $f$;\n"
    /* Top-level merge as GoTrue does it: keys set to null are removed. */,
    "create function auth.merge_meta(old jsonb, upd jsonb) returns jsonb language sql immutable set search_path = '' as $f$\n"
    "  select coalesce((select jsonb_object_agg(k, v) from jsonb_each(old || coalesce(upd, '{}'::jsonb)) e(k, v)\n"
    "                   where v <> 'null'::jsonb), '{}'::jsonb) $f$;\n"
    /* A new session with its first refresh token (stored as a hash only). */
    "create function auth.new_session(p_user uuid, p_token_hash text, p_ip text, p_ua text) returns uuid\n"
    "language plpgsql set search_path = '' as $f$\n"
    "declare sid uuid;\n"
    "begin\n"
    "  insert into auth.sessions (user_id, ip, user_agent) values (p_user, p_ip, p_ua) returning id into sid;\n"
    "  insert into auth.refresh_tokens (token_hash, session_id, user_id) values (p_token_hash, sid, p_user);\n"
    "  return sid;\n"
    "end $f$;\n"
    "create function auth.strata_signup(p_email text, p_hash text, p_meta jsonb, p_token_hash text, p_ip text, p_ua text,\n"
    "  out status text, out user_json jsonb, out session_id uuid)\n"
    "language plpgsql security definer set search_path = '' as $f$\n"
    "declare u auth.users;\n"
    "begin\n"
    "  begin\n"
    "    insert into auth.users (email, encrypted_password, email_confirmed_at, last_sign_in_at,\n"
    "                            raw_app_meta_data, raw_user_meta_data)\n"
    "    values (p_email, p_hash, now(), now(), '{\"provider\":\"email\",\"providers\":[\"email\"]}',\n"
    "            coalesce(p_meta, '{}'::jsonb))\n"
    "    returning * into u;\n"
    "  exception when unique_violation then\n"
    "    status := 'user_already_exists';\n"
    "    return;\n"
    "  end;\n"
    "  insert into auth.identities (user_id, provider, provider_id, identity_data, last_sign_in_at)\n"
    "  values (u.id, 'email', u.id::text, jsonb_build_object('sub', u.id::text, 'email', u.email,\n"
    "          'email_verified', true, 'phone_verified', false), now());\n"
    "  session_id := auth.new_session(u.id, p_token_hash, p_ip, p_ua);\n"
    "  status := 'ok';\n"
    "  user_json := auth.user_json(u);\n"
    "end $f$;\n",
    "create function auth.strata_password_user(p_email text, out user_id uuid, out encrypted_password text)\n"
    "language sql stable security definer set search_path = '' as $f$\n"
    "  select u.id, u.encrypted_password from auth.users u where lower(u.email) = lower(p_email) $f$;\n"
    "create function auth.strata_login(p_user uuid, p_token_hash text, p_ip text, p_ua text,\n"
    "  out status text, out user_json jsonb, out session_id uuid)\n"
    "language plpgsql security definer set search_path = '' as $f$\n"
    "declare u auth.users;\n"
    "begin\n"
    "  update auth.users set last_sign_in_at = now() where id = p_user returning * into u;\n"
    "  if not found then status := 'invalid_credentials'; return; end if;\n"
    "  update auth.identities set last_sign_in_at = now() where user_id = p_user and provider = 'email';\n"
    "  session_id := auth.new_session(u.id, p_token_hash, p_ip, p_ua);\n"
    "  status := 'ok';\n"
    "  user_json := auth.user_json(u);\n"
    "end $f$;\n"
    /* Rotation with reuse detection: a token that was already rotated ends its whole session. */
    "create function auth.strata_refresh(p_old_hash text, p_new_hash text,\n"
    "  out status text, out user_json jsonb, out session_id uuid)\n"
    "language plpgsql security definer set search_path = '' as $f$\n"
    "declare t auth.refresh_tokens; u auth.users;\n"
    "begin\n"
    "  select * into t from auth.refresh_tokens where token_hash = p_old_hash for update;\n"
    "  if not found then status := 'refresh_token_not_found'; return; end if;\n"
    "  if t.revoked then\n"
    "    delete from auth.sessions where id = t.session_id;\n"
    "    status := 'refresh_token_already_used';\n"
    "    return;\n"
    "  end if;\n"
    "  update auth.refresh_tokens set revoked = true where id = t.id;\n"
    "  insert into auth.refresh_tokens (token_hash, session_id, user_id, parent)\n"
    "  values (p_new_hash, t.session_id, t.user_id, t.id);\n"
    "  update auth.sessions set refreshed_at = now() where id = t.session_id;\n"
    "  select * into u from auth.users where id = t.user_id;\n"
    "  status := 'ok';\n"
    "  session_id := t.session_id;\n"
    "  user_json := auth.user_json(u);\n"
    "end $f$;\n",
    "create function auth.strata_user_get(p_user uuid, p_session uuid, out status text, out user_json jsonb)\n"
    "language plpgsql stable security definer set search_path = '' as $f$\n"
    "declare u auth.users;\n"
    "begin\n"
    "  select * into u from auth.users where id = p_user;\n"
    "  if not found then status := 'user_not_found'; return; end if;\n"
    "  if p_session is not null and not exists (select from auth.sessions s where s.id = p_session and s.user_id = p_user) then\n"
    "    status := 'session_not_found'; return;\n"
    "  end if;\n"
    "  status := 'ok';\n"
    "  user_json := auth.user_json(u);\n"
    "end $f$;\n"
    "create function auth.strata_user_update(p_user uuid, p_session uuid, p_email text, p_hash text, p_meta jsonb,\n"
    "  out status text, out user_json jsonb)\n"
    "language plpgsql security definer set search_path = '' as $f$\n"
    "declare u auth.users;\n"
    "begin\n"
    "  select * into u from auth.users where id = p_user for update;\n"
    "  if not found then status := 'user_not_found'; return; end if;\n"
    "  if p_session is not null and not exists (select from auth.sessions s where s.id = p_session and s.user_id = p_user) then\n"
    "    status := 'session_not_found'; return;\n"
    "  end if;\n"
    "  begin\n"
    "    update auth.users set\n"
    "      email = coalesce(p_email, email),\n"
    "      encrypted_password = coalesce(p_hash, encrypted_password),\n"
    "      raw_user_meta_data = case when p_meta is null then raw_user_meta_data\n"
    "                                else auth.merge_meta(raw_user_meta_data, p_meta) end\n"
    "    where id = p_user returning * into u;\n"
    "  exception when unique_violation then\n"
    "    status := 'email_exists'; return;\n"
    "  end;\n"
    "  if p_email is not null then\n"
    "    update auth.identities set identity_data = identity_data || jsonb_build_object('email', u.email)\n"
    "    where user_id = p_user and provider = 'email';\n"
    "  end if;\n"
    "  status := 'ok';\n"
    "  user_json := auth.user_json(u);\n"
    "end $f$;\n",
    "create function auth.strata_logout(p_user uuid, p_session uuid, p_scope text) returns bigint\n"
    "language sql security definer set search_path = '' as $f$\n"
    "  with d as (delete from auth.sessions s where s.user_id = p_user and (\n"
    "      (p_scope = 'global') or (p_scope = 'local' and s.id = p_session)\n"
    "      or (p_scope = 'others' and s.id is distinct from p_session)) returning 1)\n"
    "  select count(*) from d $f$;\n"
    "create function auth.strata_admin_list(p_page int, p_per_page int, out total bigint, out users jsonb)\n"
    "language sql stable security definer set search_path = '' as $f$\n"
    "  select (select count(*) from auth.users),\n"
    "         coalesce((select jsonb_agg(auth.user_json(u) order by u.created_at, u.id) from\n"
    "           (select * from auth.users order by created_at, id\n"
    "            limit p_per_page offset (greatest(p_page, 1) - 1)::bigint * p_per_page) u), '[]'::jsonb) $f$;\n"
    "create function auth.strata_admin_create(p_email text, p_hash text, p_user_meta jsonb, p_app_meta jsonb,\n"
    "  p_confirm boolean, out status text, out user_json jsonb)\n"
    "language plpgsql security definer set search_path = '' as $f$\n"
    "declare u auth.users;\n"
    "begin\n"
    "  begin\n"
    "    insert into auth.users (email, encrypted_password, email_confirmed_at, raw_app_meta_data, raw_user_meta_data)\n"
    "    values (p_email, p_hash, case when p_confirm then now() end,\n"
    "            auth.merge_meta('{\"provider\":\"email\",\"providers\":[\"email\"]}', p_app_meta),\n"
    "            auth.merge_meta('{}', p_user_meta))\n"
    "    returning * into u;\n"
    "  exception when unique_violation then\n"
    "    status := 'email_exists'; return;\n"
    "  end;\n"
    "  insert into auth.identities (user_id, provider, provider_id, identity_data)\n"
    "  values (u.id, 'email', u.id::text, jsonb_build_object('sub', u.id::text, 'email', u.email,\n"
    "          'email_verified', p_confirm, 'phone_verified', false));\n"
    "  status := 'ok';\n"
    "  user_json := auth.user_json(u);\n"
    "end $f$;\n",
    "create function auth.strata_admin_get(p_id uuid, out status text, out user_json jsonb)\n"
    "language plpgsql stable security definer set search_path = '' as $f$\n"
    "declare u auth.users;\n"
    "begin\n"
    "  select * into u from auth.users where id = p_id;\n"
    "  if not found then status := 'user_not_found'; return; end if;\n"
    "  status := 'ok';\n"
    "  user_json := auth.user_json(u);\n"
    "end $f$;\n"
    "create function auth.strata_admin_update(p_id uuid, p_email text, p_hash text, p_user_meta jsonb, p_app_meta jsonb,\n"
    "  p_confirm boolean, out status text, out user_json jsonb)\n"
    "language plpgsql security definer set search_path = '' as $f$\n"
    "declare u auth.users;\n"
    "begin\n"
    "  begin\n"
    "    update auth.users set\n"
    "      email = coalesce(p_email, email),\n"
    "      encrypted_password = coalesce(p_hash, encrypted_password),\n"
    "      email_confirmed_at = case when p_confirm is true then coalesce(email_confirmed_at, now())\n"
    "                                when p_confirm is false then null else email_confirmed_at end,\n"
    "      raw_user_meta_data = case when p_user_meta is null then raw_user_meta_data\n"
    "                                else auth.merge_meta(raw_user_meta_data, p_user_meta) end,\n"
    "      raw_app_meta_data = case when p_app_meta is null then raw_app_meta_data\n"
    "                               else auth.merge_meta(raw_app_meta_data, p_app_meta) end\n"
    "    where id = p_id returning * into u;\n"
    "  exception when unique_violation then\n"
    "    status := 'email_exists'; return;\n"
    "  end;\n"
    "  if not found then status := 'user_not_found'; return; end if;\n"
    "  if p_email is not null then\n"
    "    update auth.identities set identity_data = identity_data || jsonb_build_object('email', u.email)\n"
    "    where user_id = p_id and provider = 'email';\n"
    "  end if;\n"
    "  status := 'ok';\n"
    "  user_json := auth.user_json(u);\n"
    "end $f$;\n",
    "create function auth.strata_admin_delete(p_id uuid) returns bigint\n"
    "language sql security definer set search_path = '' as $f$\n"
    "  with d as (delete from auth.users where id = p_id returning 1) select count(*) from d $f$;\n"
    "revoke all on all functions in schema auth from public;\n"
    "grant execute on function auth.uid(), auth.role(), auth.email(), auth.jwt() to anon, authenticated, service_role;\n"
    "grant execute on function auth.strata_signup(text, text, jsonb, text, text, text),\n"
    "  auth.strata_password_user(text), auth.strata_login(uuid, text, text, text),\n"
    "  auth.strata_refresh(text, text), auth.strata_user_get(uuid, uuid),\n"
    "  auth.strata_user_update(uuid, uuid, text, text, jsonb), auth.strata_logout(uuid, uuid, text),\n"
    "  auth.strata_admin_list(int, int), auth.strata_admin_create(text, text, jsonb, jsonb, boolean),\n"
    "  auth.strata_admin_get(uuid), auth.strata_admin_update(uuid, text, text, jsonb, jsonb, boolean),\n"
    "  auth.strata_admin_delete(uuid) to strata_auth;\n",
    NULL,
};


/* Migration 11: refresh tokens as GoTrue treats them (docs/auth.md). strata_refresh gains
 * the reuse interval: a token revoked (rotated) less than that many seconds ago refreshes
 * again instead of counting as reuse, so two tabs refreshing at once keep their session;
 * later, reuse still ends the session. Each rotation also prunes the session's revoked
 * tokens, keeping those revoked within the last 24 hours (GoTrue's cleanup keeps as long),
 * at most the 50 most recent: that is the window reuse detection covers. */
static const char *const AUTH_REFRESH_SQL[] = {
    "drop function auth.strata_refresh(text, text);\n"
    "create function auth.strata_refresh(p_old_hash text, p_new_hash text, p_reuse_interval int,\n"
    "  out status text, out user_json jsonb, out session_id uuid)\n"
    "language plpgsql security definer set search_path = '' as $f$\n"
    "declare t auth.refresh_tokens; u auth.users;\n"
    "begin\n"
    "  select * into t from auth.refresh_tokens where token_hash = p_old_hash for update;\n"
    "  if not found then status := 'refresh_token_not_found'; return; end if;\n"
    "  if t.revoked then\n"
    /* updated_at is when it was revoked (the trigger stamps the one update it gets). */
    "    if coalesce(p_reuse_interval, 0) <= 0 or now() > t.updated_at + make_interval(secs => p_reuse_interval) then\n"
    "      delete from auth.sessions where id = t.session_id;\n"
    "      status := 'refresh_token_already_used';\n"
    "      return;\n"
    "    end if;\n"
    "  else\n"
    "    update auth.refresh_tokens set revoked = true where id = t.id;\n"
    "  end if;\n"
    "  insert into auth.refresh_tokens (token_hash, session_id, user_id, parent)\n"
    "  values (p_new_hash, t.session_id, t.user_id, t.id);\n"
    "  delete from auth.refresh_tokens r where r.session_id = t.session_id and r.revoked and r.id <> t.id\n"
    "    and (r.updated_at < now() - interval '24 hours' or r.id not in (\n"
    "      select k.id from auth.refresh_tokens k where k.session_id = t.session_id and k.revoked\n"
    "      order by k.updated_at desc, k.id desc limit 50));\n"
    "  update auth.sessions set refreshed_at = now() where id = t.session_id;\n"
    "  select * into u from auth.users where id = t.user_id;\n"
    "  status := 'ok';\n"
    "  session_id := t.session_id;\n"
    "  user_json := auth.user_json(u);\n"
    "end $f$;\n"
    "revoke all on function auth.strata_refresh(text, text, int) from public;\n"
    "grant execute on function auth.strata_refresh(text, text, int) to strata_auth;\n",
    NULL,
};

/* Migration 12: anonymous users (GoTrue's POST /signup without email or phone, when
 * strata-auth-anonymous-users-enabled is on). They have no email (NULL; "" in the user JSON,
 * as GoTrue), no identity, app_metadata {} and is_anonymous true. An email set through
 * PUT /user makes one permanent at once (emails are auto-confirmed): is_anonymous false,
 * an email identity and the email provider in app_metadata, as GoTrue after verification. */
static const char *const AUTH_ANON_SQL[] = {
    "alter table auth.users alter column email drop not null;\n"
    "alter table auth.users add column is_anonymous boolean not null default false;\n"
    "create or replace function auth.user_json(u auth.users) returns jsonb language sql stable set search_path = '' as $f$\n"
    "  select jsonb_build_object(\n"
    "    'id', u.id, 'aud', u.aud, 'role', u.role, 'email', coalesce(u.email, ''),\n"
    "    'email_confirmed_at', u.email_confirmed_at, 'phone', '', 'confirmed_at', u.email_confirmed_at,\n"
    "    'last_sign_in_at', u.last_sign_in_at,\n"
    "    'app_metadata', u.raw_app_meta_data, 'user_metadata', u.raw_user_meta_data,\n"
    "    'identities', coalesce((select jsonb_agg(jsonb_build_object(\n"
    "        'identity_id', i.id, 'id', i.provider_id, 'user_id', i.user_id,\n"
    "        'identity_data', i.identity_data, 'provider', i.provider,\n"
    "        'last_sign_in_at', i.last_sign_in_at, 'created_at', i.created_at,\n"
    "        'updated_at', i.updated_at, 'email', i.identity_data ->> 'email') order by i.created_at)\n"
    "      from auth.identities i where i.user_id = u.id), '[]'::jsonb),\n"
    "    'created_at', u.created_at, 'updated_at', u.updated_at, 'is_anonymous', u.is_anonymous) $f$;\n"
    "create function auth.strata_signup_anonymous(p_meta jsonb, p_token_hash text, p_ip text, p_ua text,\n"
    "  out status text, out user_json jsonb, out session_id uuid)\n"
    "language plpgsql security definer set search_path = '' as $f$\n"
    "declare u auth.users;\n"
    "begin\n"
    "  insert into auth.users (email, is_anonymous, last_sign_in_at, raw_app_meta_data, raw_user_meta_data)\n"
    "  values (null, true, now(), '{}', coalesce(p_meta, '{}'::jsonb))\n"
    "  returning * into u;\n"
    "  session_id := auth.new_session(u.id, p_token_hash, p_ip, p_ua);\n"
    "  status := 'ok';\n"
    "  user_json := auth.user_json(u);\n"
    "end $f$;\n",
    "create or replace function auth.strata_user_update(p_user uuid, p_session uuid, p_email text, p_hash text,\n"
    "  p_meta jsonb, out status text, out user_json jsonb)\n"
    "language plpgsql security definer set search_path = '' as $f$\n"
    "declare u auth.users;\n"
    "begin\n"
    "  select * into u from auth.users where id = p_user for update;\n"
    "  if not found then status := 'user_not_found'; return; end if;\n"
    "  if p_session is not null and not exists (select from auth.sessions s where s.id = p_session and s.user_id = p_user) then\n"
    "    status := 'session_not_found'; return;\n"
    "  end if;\n"
    "  begin\n"
    "    update auth.users set\n"
    "      email = coalesce(p_email, email),\n"
    "      encrypted_password = coalesce(p_hash, encrypted_password),\n"
    "      raw_user_meta_data = case when p_meta is null then raw_user_meta_data\n"
    "                                else auth.merge_meta(raw_user_meta_data, p_meta) end\n"
    "    where id = p_user returning * into u;\n"
    "  exception when unique_violation then\n"
    "    status := 'email_exists'; return;\n"
    "  end;\n"
    "  if p_email is not null and u.is_anonymous then\n"
    "    update auth.users set is_anonymous = false, email_confirmed_at = now(),\n"
    "      raw_app_meta_data = raw_app_meta_data || '{\"provider\":\"email\",\"providers\":[\"email\"]}'\n"
    "    where id = p_user returning * into u;\n"
    "    insert into auth.identities (user_id, provider, provider_id, identity_data, last_sign_in_at)\n"
    "    values (u.id, 'email', u.id::text, jsonb_build_object('sub', u.id::text, 'email', u.email,\n"
    "            'email_verified', true, 'phone_verified', false), now());\n"
    "  elsif p_email is not null then\n"
    "    update auth.identities set identity_data = identity_data || jsonb_build_object('email', u.email)\n"
    "    where user_id = p_user and provider = 'email';\n"
    "  end if;\n"
    "  status := 'ok';\n"
    "  user_json := auth.user_json(u);\n"
    "end $f$;\n"
    "revoke all on function auth.strata_signup_anonymous(jsonb, text, text, text) from public;\n"
    "grant execute on function auth.strata_signup_anonymous(jsonb, text, text, text) to strata_auth;\n",
    NULL,
};

/* Append only: a migration, once released, never changes. */
static const migration_t MIGRATIONS[] = {
    {1, "strata_meta",
     "create schema if not exists strata_meta;"
     "comment on schema strata_meta is 'Strata bookkeeping';", false, NULL},
    /* Prefer: count=planned|estimated: the planner's row estimate for a read's count query,
     * inside the request's own statement (one round trip). The query text comes from
     * Strata's SQL builder; its parameter values arrive as text and are quoted by
     * PostgreSQL (quote_literal) into EXECUTE's argument list, so they take the types the
     * PREPARE inferred. SECURITY INVOKER: it can do nothing its caller could not. */
    {2, "plan_rows",
     "create or replace function strata_meta.plan_rows(query text, params text[]) returns bigint"
     " language plpgsql volatile as $f$"
     " declare plan json; args text;"
     " begin"
     "   if exists (select 1 from pg_prepared_statements where name = 'strata_plan_rows') then"
     "     deallocate strata_plan_rows;"
     "   end if;"
     "   execute 'prepare strata_plan_rows as ' || query;"
     "   select string_agg(coalesce(quote_literal(p), 'null'), ', ' order by i) into args"
     "     from unnest(params) with ordinality as a(p, i);"
     "   execute 'explain (format json) execute strata_plan_rows' || coalesce('(' || args || ')', '') into plan;"
     "   deallocate strata_plan_rows;"
     "   return (plan->0->'Plan'->>'Plan Rows')::bigint;"
     " end $f$;"
     "comment on function strata_meta.plan_rows(text, text[]) is 'Planner row estimate (Prefer: count=planned)';"
     "grant usage on schema strata_meta to public;"
     "grant execute on function strata_meta.plan_rows(text, text[]) to public;", false, NULL},
    {10, "auth", "set local client_min_messages = warning", true, AUTH_SQL},
    /* Optional like 10, which it needs: retried at each start until both apply. */
    {11, "auth_refresh_reuse", "set local client_min_messages = warning", true, AUTH_REFRESH_SQL},
    {12, "auth_anonymous", "set local client_min_messages = warning", true, AUTH_ANON_SQL},
};

static const char *const DEMO_SQL[] = {
    "create table if not exists public.authors ("
    "  id bigint generated by default as identity primary key,"
    "  name text not null,"
    "  born int);"
    "comment on table public.authors is 'Writers in the demo library';",
    "create table if not exists public.books ("
    "  id bigint generated by default as identity primary key,"
    "  title text not null,"
    "  author_id bigint not null references public.authors(id),"
    "  published int,"
    "  price numeric(8,2),"
    "  created_at timestamptz not null default now());"
    "comment on table public.books is 'Books in the demo library';"
    "comment on column public.books.price is 'Price in euros';"
    "create index if not exists books_author_id_idx on public.books(author_id);",
    "create table if not exists public.tags ("
    "  id bigint generated by default as identity primary key,"
    "  name text not null unique);",
    "create table if not exists public.book_tags ("
    "  book_id bigint not null references public.books(id) on delete cascade,"
    "  tag_id bigint not null references public.tags(id) on delete cascade,"
    "  primary key (book_id, tag_id));",
    "create table if not exists public.reviews ("
    "  id bigint generated by default as identity primary key,"
    "  book_id bigint not null references public.books(id) on delete cascade,"
    "  stars int not null check (stars between 1 and 5),"
    "  body text,"
    "  published boolean not null default false);",
    "alter table public.reviews enable row level security;",
    "do $$ begin"
    "  if not exists (select 1 from pg_policies where schemaname = 'public' and tablename = 'reviews'"
    "                 and policyname = 'anon sees published reviews') then"
    "    create policy \"anon sees published reviews\" on public.reviews for select to anon using (published);"
    "  end if;"
    "  if not exists (select 1 from pg_policies where schemaname = 'public' and tablename = 'reviews'"
    "                 and policyname = 'authenticated sees all reviews') then"
    "    create policy \"authenticated sees all reviews\" on public.reviews for all to authenticated using (true);"
    "  end if;"
    "end $$;",
    "create or replace view public.book_list as"
    "  select b.id, b.title, a.name as author, b.published from public.books b"
    "  join public.authors a on a.id = b.author_id;",
    "create or replace function public.books_by(author_name text) returns setof public.books"
    "  language sql stable as $f$ select b.* from public.books b join public.authors a"
    "  on a.id = b.author_id where a.name = author_name order by b.id $f$;",
    "insert into public.authors (id, name, born) overriding system value values"
    "  (1, 'Ursula K. Le Guin', 1929), (2, 'Terry Pratchett', 1948), (3, 'Octavia E. Butler', 1947)"
    "  on conflict (id) do nothing;",
    "insert into public.books (id, title, author_id, published, price) overriding system value values"
    "  (1, 'A Wizard of Earthsea', 1, 1968, 9.99), (2, 'The Left Hand of Darkness', 1, 1969, 11.50),"
    "  (3, 'The Dispossessed', 1, 1974, 12.00), (4, 'Guards! Guards!', 2, 1989, 8.99),"
    "  (5, 'Small Gods', 2, 1992, 8.99), (6, 'Kindred', 3, 1979, 10.50),"
    "  (7, 'Parable of the Sower', 3, 1993, 13.25)"
    "  on conflict (id) do nothing;",
    "insert into public.tags (id, name) overriding system value values"
    "  (1, 'fantasy'), (2, 'science fiction'), (3, 'humour') on conflict (id) do nothing;",
    "insert into public.book_tags values (1,1),(2,2),(3,2),(4,1),(4,3),(5,1),(5,3),(6,2),(7,2)"
    "  on conflict do nothing;",
    "insert into public.reviews (id, book_id, stars, body, published) overriding system value values"
    "  (1, 1, 5, 'A classic.', true), (2, 4, 4, 'Very funny.', true), (3, 6, 2, 'Draft review.', false)"
    "  on conflict (id) do nothing;"
    "select setval(pg_get_serial_sequence('public.' || t, 'id'), (select coalesce(max(id), 1) from"
    "  public.authors)) from (values ('authors')) v(t);"
    "select setval(pg_get_serial_sequence('public.books', 'id'), (select max(id) from public.books));"
    "select setval(pg_get_serial_sequence('public.tags', 'id'), (select max(id) from public.tags));"
    "select setval(pg_get_serial_sequence('public.reviews', 'id'), (select max(id) from public.reviews));",
    "do $$ begin"
    "  if exists (select 1 from pg_roles where rolname = 'anon') then"
    "    grant usage on schema public to anon;"
    "    grant select on public.authors, public.books, public.tags, public.book_tags, public.reviews,"
    "      public.book_list to anon;"
    "    grant execute on function public.books_by(text) to anon;"
    "  end if;"
    "  if exists (select 1 from pg_roles where rolname = 'authenticated') then"
    "    grant usage on schema public to authenticated;"
    "    grant select, insert, update, delete on public.authors, public.books, public.tags,"
    "      public.book_tags, public.reviews to authenticated;"
    "    grant select on public.book_list to authenticated;"
    "    grant usage on all sequences in schema public to authenticated;"
    "  end if;"
    "end $$;",
    "notify pgrst, 'reload schema';",
};

static int exec(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = CORE_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        size_t n = strlen(err);
        while (n && err[n - 1] == '\n') err[--n] = '\0';
        rc = CORE_EIO;
    }
    PQclear(r);
    return rc;
}

int db_migrate(const char *admin_conninfo, bool demo, char *err, size_t errlen)
{
    char msg[1024] = "";
    int rc = CORE_EIO;
    PGconn *c = PQconnectdb(admin_conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "migrations: cannot connect: %s", PQerrorMessage(c));
        goto out;
    }
    PQsetNoticeProcessor(c, NULL, NULL);
    if (exec(c, "set client_min_messages = warning;"
                "select pg_advisory_lock(hashtext('strata_migrate'));"
                "create schema if not exists strata_meta;"
                "create table if not exists strata_meta.migrations (version int primary key,"
                " name text not null, applied_at timestamptz not null default now())",
             msg, sizeof(msg)) != CORE_OK) {
        snprintf(err, errlen, "migrations: %s", msg);
        goto out;
    }
    for (size_t i = 0; i < sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0]); i++) {
        const migration_t *m = &MIGRATIONS[i];
        char ver[16];
        snprintf(ver, sizeof(ver), "%d", m->version);
        const char *p[1] = {ver};
        PGresult *r = PQexecParams(c, "select 1 from strata_meta.migrations where version = $1::int", 1,
                                   NULL, p, NULL, NULL, 0);
        bool done = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
        PQclear(r);
        if (done) continue;
        bool applied = exec(c, "begin", msg, sizeof(msg)) == CORE_OK && exec(c, m->sql, msg, sizeof(msg)) == CORE_OK;
        for (size_t k = 0; applied && m->parts && m->parts[k]; k++)
            applied = exec(c, m->parts[k], msg, sizeof(msg)) == CORE_OK;
        if (!applied) {
            char ignored[256];
            (void)exec(c, "rollback", ignored, sizeof(ignored));
            if (m->optional) {
                LOG_WARN("migration %d (%s) could not be applied, going on without it: %s", m->version,
                         m->name, msg);
                continue;
            }
            snprintf(err, errlen, "migration %d (%s) failed: %s", m->version, m->name, msg);
            goto out;
        }
        const char *p2[2] = {ver, m->name};
        r = PQexecParams(c, "insert into strata_meta.migrations (version, name) values ($1::int, $2)", 2,
                         NULL, p2, NULL, NULL, 0);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok || exec(c, "commit", msg, sizeof(msg)) != CORE_OK) {
            snprintf(err, errlen, "migration %d (%s) could not be recorded", m->version, m->name);
            goto out;
        }
        LOG_INFO("applied migration %d (%s)", m->version, m->name);
    }
    if (demo) {
        bool ok = exec(c, "begin", msg, sizeof(msg)) == CORE_OK;
        for (size_t i = 0; ok && i < sizeof(DEMO_SQL) / sizeof(DEMO_SQL[0]); i++)
            ok = exec(c, DEMO_SQL[i], msg, sizeof(msg)) == CORE_OK;
        if (!ok || exec(c, "commit", msg, sizeof(msg)) != CORE_OK) {
            snprintf(err, errlen, "demo schema failed: %s", msg);
            (void)exec(c, "rollback", msg, sizeof(msg));
            goto out;
        }
        LOG_INFO("demo schema loaded");
    }
    rc = CORE_OK;
out:
    if (c && PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, "select pg_advisory_unlock_all()");
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

/* The role the API connections log in as: the one strata_auth must be granted to. */
static int api_role(const char *api_conninfo, char *out, size_t outlen, char *err, size_t errlen)
{
    int rc = CORE_EIO;
    PGconn *c = PQconnectdb(api_conninfo);
    PGresult *r = NULL;
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect as the API role: %s", PQerrorMessage(c));
        goto out;
    }
    r = PQexec(c, "select session_user");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        snprintf(err, errlen, "cannot read the API role: %s", PQresultErrorMessage(r));
        goto out;
    }
    snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
    rc = CORE_OK;
out:
    PQclear(r);
    PQfinish(c);
    return rc;
}

int db_migrate_auth_ready(const char *admin_conninfo, const char *api_conninfo, char *err, size_t errlen)
{
    char role[256], msg[512] = "";
    int rc = api_role(api_conninfo, role, sizeof(role), err, errlen);
    if (rc != CORE_OK) return rc;
    rc = CORE_EIO;
    PGconn *c = PQconnectdb(admin_conninfo);
    PGresult *r = NULL;
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect: %s", PQerrorMessage(c));
        goto out;
    }
    PQsetNoticeProcessor(c, NULL, NULL);
    const char *p[1] = {role};
    r = PQexecParams(c,
                     "select to_regprocedure('auth.strata_signup(text,text,jsonb,text,text,text)') is not null"
                     "   and to_regprocedure('auth.strata_refresh(text,text,int)') is not null"
                     "   and to_regprocedure('auth.strata_signup_anonymous(jsonb,text,text,text)') is not null,"
                     " pg_has_role($1, 'strata_auth', 'member'),"
                     " format('grant strata_auth to %I', $1)",
                     1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        snprintf(err, errlen, "the auth schema is missing: %s", PQresultErrorMessage(r));
        goto out;
    }
    if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        snprintf(err, errlen, "the auth schema is missing (migrations 10 to 12 were not applied)");
        goto out;
    }
    if (strcmp(PQgetvalue(r, 0, 1), "t") != 0 && exec(c, PQgetvalue(r, 0, 2), msg, sizeof(msg)) != CORE_OK) {
        snprintf(err, errlen, "cannot grant strata_auth to %s: %s", role, msg);
        goto out;
    }
    rc = CORE_OK;
out:
    PQclear(r);
    PQfinish(c);
    return rc;
}

/*
 * What the auth service issues: HS256 access tokens signed with the same HMAC key the
 * verifier checks them with (so the REST layer treats them like any other JWT), and
 * opaque refresh tokens of which only a hash is ever stored.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "auth/service_int.h"

bool auth_token_can_sign(const auth_jwt_t *v)
{
    return v && v->has_secret && v->nkeys == 1 && v->keys[0].kty == AUTH_KTY_OCT &&
           (v->keys[0].algs & AUTH_ALG_BIT(AUTH_ALG_HS256)) && v->keys[0].hmac[0];
}

static void b64url_append(core_buf_t *out, const unsigned char *bin, size_t n)
{
    size_t cap = sodium_base64_encoded_len(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char small[512];
    char *tmp = cap <= sizeof(small) ? small : core_malloc(cap);
    if (!tmp) {
        out->status = CORE_ENOMEM;
        return;
    }
    sodium_bin2base64(tmp, cap, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    core_buf_append_cstr(out, tmp);
    if (tmp != small) core_free(tmp);
}

int auth_token_sign(const auth_jwt_t *v, str_t claims_json, core_buf_t *out)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    if (!auth_token_can_sign(v)) return CORE_EINVAL;
    size_t start = out->len;
    b64url_append(out, (const unsigned char *)header, sizeof(header) - 1);
    core_buf_append_char(out, '.');
    b64url_append(out, (const unsigned char *)claims_json.ptr, claims_json.len);
    if (core_buf_status(out) != CORE_OK) return core_buf_status(out);
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(v->keys[0].hmac[0]);
    bool ok = ctx && EVP_MAC_update(ctx, (const unsigned char *)out->ptr + start, out->len - start) &&
              EVP_MAC_final(ctx, mac, &maclen, sizeof(mac));
    EVP_MAC_CTX_free(ctx);
    if (!ok) return CORE_EIO;
    core_buf_append_char(out, '.');
    b64url_append(out, mac, maclen);
    OPENSSL_cleanse(mac, sizeof(mac));
    return core_buf_status(out);
}

int auth_claims_build(json_t *user, const char *session_id, const char *aud, int64_t iat, int64_t exp,
                      core_buf_t *out)
{
    json_t *id = json_object_get(user, "id");
    if (!json_is_string(id)) return CORE_EINVAL;
    json_t *role = json_object_get(user, "role");
    json_t *email = json_object_get(user, "email");
    json_t *app = json_object_get(user, "app_metadata");
    json_t *meta = json_object_get(user, "user_metadata");
    json_t *c = json_object();
    json_t *amr = json_array();
    json_t *amr0 = json_object();
    int rc = CORE_ENOMEM;
    if (!c || !amr || !amr0) goto out;
    int bad = 0;
    bad |= json_object_set_new(c, "aud", json_string(aud ? aud : "authenticated"));
    bad |= json_object_set_new(c, "exp", json_integer(exp));
    bad |= json_object_set_new(c, "iat", json_integer(iat));
    bad |= json_object_set(c, "sub", id);
    bad |= json_object_set_new(c, "email", json_is_string(email) ? json_copy(email) : json_string(""));
    bad |= json_object_set_new(c, "phone", json_string(""));
    bad |= json_object_set_new(c, "app_metadata", json_is_object(app) ? json_deep_copy(app) : json_object());
    bad |= json_object_set_new(c, "user_metadata", json_is_object(meta) ? json_deep_copy(meta) : json_object());
    bad |= json_object_set_new(c, "role", json_is_string(role) ? json_copy(role) : json_string("authenticated"));
    bad |= json_object_set_new(c, "aal", json_string("aal1"));
    /* GoTrue records how the session began; Strata's sessions begin with a password, or
     * anonymously for anonymous users. */
    bool anonymous = json_is_true(json_object_get(user, "is_anonymous"));
    bad |= json_object_set_new(amr0, "method", json_string(anonymous ? "anonymous" : "password"));
    bad |= json_object_set_new(amr0, "timestamp", json_integer(iat));
    bad |= json_array_append(amr, amr0);
    bad |= json_object_set(c, "amr", amr);
    if (session_id) bad |= json_object_set_new(c, "session_id", json_string(session_id));
    bad |= json_object_set_new(c, "is_anonymous", json_boolean(anonymous));
    if (bad) goto out;
    char *text = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text) goto out;
    core_buf_append_cstr(out, text);
    free(text);
    rc = core_buf_status(out);
out:
    json_decref(amr0);
    json_decref(amr);
    json_decref(c);
    return rc;
}

void auth_refresh_token_new(char out[AUTH_REFRESH_LEN + 1])
{
    unsigned char raw[AUTH_REFRESH_BYTES];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(out, AUTH_REFRESH_LEN + 1, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
}

void auth_refresh_token_hash(str_t token, char out[AUTH_REFRESH_HASH_LEN + 1])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token.ptr, token.len, md);
    sodium_bin2hex(out, AUTH_REFRESH_HASH_LEN + 1, md, sizeof(md));
}

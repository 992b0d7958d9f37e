/*
 * OCI image layouts (image-spec image-layout.md): what ls_diff_files() needs
 * to add a layer to the image at a tag of a layout directory (`diff
 * --oci-layout DIR[:TAG]`).  The documents (index.json, the image manifest,
 * the config) are jansson objects, read back from the layout (each blob's
 * size and sha256 checked) and written as canonical JSON: sorted keys, no
 * insignificant whitespace, so the same layers give the same digests on
 * every run.  This module reads and builds; the files themselves are written
 * and committed by files.c through output.h, in the order blob, config,
 * image manifest, oci-layout, index.json.
 */
#ifndef LS_OCI_H
#define LS_OCI_H

#include "layersnap.h"

#include <jansson.h>

#define LS_OCI_MEDIA_INDEX    "application/vnd.oci.image.index.v1+json"
#define LS_OCI_MEDIA_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define LS_OCI_MEDIA_CONFIG   "application/vnd.oci.image.config.v1+json"
#define LS_OCI_REF_NAME       "org.opencontainers.image.ref.name"
#define LS_OCI_LAYOUT_VERSION "1.0.0"

/** Largest JSON document read back from a layout (index.json, a manifest, a
 *  config, --config FILE). */
#define LS_OCI_MAX_JSON ((size_t)64 << 20)

/* ---- documents ---------------------------------------------------------------- */

/** Parses len bytes of buf as one JSON object (duplicate keys refused).
 *  *out owned by the caller (json_decref).  Errors name what and the place:
 *  "WHAT: line L column C: why", -EINVAL. */
int ls_oci_parse(const char *what, const void *buf, size_t len, json_t **out, struct ls_error *err);

/** The canonical bytes of doc (sorted keys, no whitespace, no trailing
 *  newline), malloc'ed, with *len; NULL when out of memory. */
char *ls_oci_canonical(const json_t *doc, size_t *len);

/** "sha256:<64 hex>" of len bytes of buf into out. */
int ls_oci_sha256(const void *buf, size_t len, char out[72], struct ls_error *err);

/** 0 for "sha256:" and 64 lowercase hex digits, else -EINVAL naming what
 *  (another algorithm is refused as unsupported). */
int ls_oci_check_digest(const char *digest, const char *what, struct ls_error *err);

/** 0 for a tag this module writes: 1 to 128 of [A-Za-z0-9._-], the first
 *  alphanumeric (a Docker tag, which `skopeo oci:DIR:TAG` reads), else
 *  -EINVAL. */
int ls_oci_check_tag(const char *tag, struct ls_error *err);

/** Time t (seconds since 1970) as RFC 3339 UTC, "1970-01-01T00:00:00Z". */
void ls_oci_time(int64_t t, char out[40]);

/** A descriptor {mediaType, digest, size}; NULL when out of memory. */
json_t *ls_oci_descriptor(const char *media_type, const char *digest, uint64_t size);

/** A new, empty index.json: schemaVersion 2, its mediaType, no manifests. */
json_t *ls_oci_index_new(void);

/** Checks an index.json read back: schemaVersion 2, manifests an array of
 *  descriptors.  -EINVAL naming what. */
int ls_oci_index_check(const json_t *index, const char *what, struct ls_error *err);

/** The manifests entry of index (checked) tagged tag (its annotation
 *  org.opencontainers.image.ref.name), or NULL. */
json_t *ls_oci_index_find(const json_t *index, const char *tag);

/** Tags the image manifest desc (a descriptor, not stolen) as tag: the
 *  first entry with that ref.name is replaced in place and any other one
 *  removed, or the entry is appended; other tags' entries are kept.  The
 *  entry gets the ref.name annotation and, when platform is not NULL, that
 *  object (not stolen) as its platform. */
int ls_oci_index_set(json_t *index, const char *tag, const json_t *desc, const json_t *platform,
		     struct ls_error *err);

/** A new image manifest (schemaVersion 2, its mediaType, no layers) and a
 *  new config (rootfs of no layers, no history, an empty config, no
 *  platform yet). */
json_t *ls_oci_manifest_new(void);
json_t *ls_oci_config_new(void);

/** The machine's platform as the OCI names it (GOOS/GOARCH): "linux/amd64",
 *  "linux/arm64", "linux/arm/v7", ... */
const char *ls_oci_machine_platform(void);

/** Sets the config's os, architecture and variant from "OS/ARCH[/VARIANT]"
 *  (a variant absent from it is removed).  -EINVAL for another form. */
int ls_oci_set_platform(json_t *config, const char *platform, struct ls_error *err);

/** The platform object of an index entry for config: architecture, os and
 *  variant when the config has them; a new reference, NULL when it has
 *  neither os nor architecture. */
json_t *ls_oci_platform_of(const json_t *config);

/** Checks an image read back.  The manifest: schemaVersion 2, the media
 *  types, the config and layer descriptors (ls_oci_manifest_check()); the
 *  config: rootfs of type layers with as many diff_ids (digests) as the
 *  manifest has layers, history an array, config an object.  -EINVAL
 *  naming what. */
int ls_oci_manifest_check(const json_t *manifest, const char *what, struct ls_error *err);
int ls_oci_image_check(const json_t *manifest, const json_t *config, const char *what, struct ls_error *err);

/** Merges over, the object of `--config FILE`, into config's "config"
 *  object: User, WorkingDir, StopSignal, Cmd, Entrypoint, Shell,
 *  Healthcheck, OnBuild and ArgsEscaped replace the image's; Env entries
 *  replace the image's entry of the same variable in place and the others
 *  are appended; Labels, ExposedPorts and Volumes are merged key by key.
 *  A null removes the key (at either level).  Each value's type is checked
 *  and an unknown key refused: -EINVAL naming what. */
int ls_oci_config_merge(json_t *config, const json_t *over, const char *what, struct ls_error *err);

/** One step of the image: a layer, or with empty a history entry only. */
struct ls_oci_step {
	const char *media_type;     /**< the layer's; unused when empty */
	const char *digest;         /**< the blob's sha256 */
	uint64_t size;              /**< the blob's size */
	const char *diff_id;        /**< the uncompressed tar's sha256 */
	bool empty;                 /**< no layer: history's empty_layer */
	const char *created;        /**< RFC 3339: history's and the config's created */
	const char *created_by;     /**< NULL, or history's created_by */
};

/** Appends step to the image: the layer's descriptor to manifest's layers,
 *  its diff_id to config's rootfs, a history entry; sets the config's
 *  created.  -EINVAL for a string that is not UTF-8, -ENOMEM. */
int ls_oci_add_step(json_t *manifest, json_t *config, const struct ls_oci_step *step, struct ls_error *err);

/* ---- a layout --------------------------------------------------------------- */

/** A blob of the base image's layout that the image needs in this one. */
struct ls_oci_copy {
	char *src;                  /**< the base layout's file */
	char digest[72];
	uint64_t size;
};

/** The image a run adds a layer to, as ls_oci_load() read it. */
struct ls_oci {
	struct ls_oci_options o;    /**< the caller's options, in this library's version */
	char *dir;                  /**< the layout directory (as given) */
	const char *tag;            /**< o.tag or "latest" */
	char *blobs;                /**< DIR/blobs/sha256 */
	char *index_path;           /**< DIR/index.json */
	char *layout_path;          /**< DIR/oci-layout */
	bool have_layout;           /**< oci-layout exists (and is version 1.0.0) */
	json_t *index, *manifest, *config;
	struct ls_oci_copy *copy;   /**< base blobs to copy into blobs/sha256 first */
	size_t n_copy;
	/* ls_oci_finish()'s documents, canonical, with their digests */
	char *config_json, *manifest_json, *index_json, *layout_json;
	size_t config_len, manifest_len, index_len, layout_len;
	char config_digest[72], manifest_digest[72];
};

/** Checks opts (a tag, a platform; a layout that is not root, when root
 *  is not NULL) and makes DIR, DIR/blobs and DIR/blobs/sha256 where they
 *  are missing (DIR's parent must exist).  *o zeroed first; ls_oci_free()
 *  it whatever this returns. */
int ls_oci_prepare(struct ls_oci *o, const struct ls_oci_options *opts, const char *root, struct ls_error *err);

/** Reads the layout (with index.json's lock held): oci-layout, index.json,
 *  and the image to start from: the base image when o.base_layout is set,
 *  else the one tagged o.tag, else a new one; applies the platform and the
 *  config file.  A layout, image or config file that is not what it should
 *  be is -EINVAL with a one-line reason. */
int ls_oci_load(struct ls_oci *o, struct ls_error *err);

/** Copies o->copy[i] into fd, checking its size and sha256. */
int ls_oci_copy_blob(const struct ls_oci *o, size_t i, int fd, struct ls_error *err);

/** Whether blobs/sha256 holds the blob digest (a regular file). */
bool ls_oci_has_blob(const struct ls_oci *o, const char *digest);

/** Adds step and makes the documents to write: config, image manifest,
 *  index.json (and oci-layout when the layout has none). */
int ls_oci_finish(struct ls_oci *o, const struct ls_oci_step *step, struct ls_error *err);

void ls_oci_free(struct ls_oci *o);

#endif

/*
 * ctl.c: syncgatectl, the administrator's command line.
 *
 * One table maps each command ("user add", "store verify", ...) to the
 * function that runs it, the number of operands it takes and the options
 * it accepts.  Users and roles are checked with sg_user_check_doc and
 * sg_role_check_doc on the JSON document the admin API would receive, so
 * both paths enforce the same rules, and written in one durable
 * transaction.  Passwords come from standard input only (argv is visible
 * to every user of the machine), are read with read(2) so that no stdio
 * buffer keeps a copy, and are wiped once hashed.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "ctl.h"
#include "encode.h"
#include "error.h"
#include "log.h"
#include "password.h"
#include "secure.h"
#include "session.h"
#include "store.h"
#include "user.h"

#define PROGRAM "syncgatectl"

/*
 * Longest password line read, in bytes.  bcrypt uses only the first 72,
 * but a longer pass phrase is accepted as the admin API accepts it; a
 * line past this length is not a password someone typed or pasted.
 */
#define PASSWORD_MAX 1024

/* Shortest password, as the admin API (SPEC section 5). */
#define PASSWORD_MIN 3

/* Most positional words a command line holds: "user add DB NAME". */
#define WORDS_MAX 4

/* Options, as bits of struct ctl.given and of struct command.opts. */
#define OPT_CHANNEL 0x01
#define OPT_ROLE 0x02
#define OPT_EMAIL 0x04
#define OPT_DISABLED 0x08
#define OPT_PASSWORD_STDIN 0x10
#define OPT_STDIN 0x20

/* Results of the transaction bodies besides the store's own codes. */
#define TXN_EXISTS 100
#define TXN_NOMEM 101

struct option_def {
	const char *name;
	unsigned bit;
	int takes_value;
};

static const struct option_def option_defs[] = {
	{"--channel", OPT_CHANNEL, 1},
	{"--role", OPT_ROLE, 1},
	{"--email", OPT_EMAIL, 1},
	{"--disabled", OPT_DISABLED, 0},
	{"--password-stdin", OPT_PASSWORD_STDIN, 0},
	{"--stdin", OPT_STDIN, 0},
};

#define N_OPTION_DEFS (sizeof(option_defs) / sizeof(option_defs[0]))

/* Everything one run of the program holds. */
struct ctl {
	const char *config_path;      /* -c FILE; NULL: sg_config_default_path() */
	const char *words[WORDS_MAX]; /* positional words, borrowed from argv */
	size_t n_words;               /* may exceed WORDS_MAX: too many */
	const char **ops;             /* the operands after the command words */
	size_t n_ops;
	unsigned given;        /* OPT_* seen */
	const char **channels; /* --channel values, borrowed from argv */
	size_t n_channels;
	const char **roles; /* --role values */
	size_t n_roles;
	const char *email;      /* --email value */
	struct sg_config *cfg;  /* owned, once loaded */
	struct sg_store *store; /* owned, once opened */
	struct sg_error err;    /* why the command failed */
};

struct command {
	const char *group;         /* first word: "user", "check-config" */
	const char *verb;          /* second word, or NULL */
	size_t min_ops, max_ops;   /* operands after the command words */
	unsigned opts;             /* OPT_* accepted */
	int (*run)(struct ctl *c); /* 0, or -1 with c->err set */
};

static void
usage(FILE *fp)
{
	fprintf(fp,
		"usage: " PROGRAM " [-c FILE] COMMAND [ARGS]\n"
		"\n"
		"Commands:\n"
		"  check-config           load and check the configuration file\n"
		"  hash-password [--stdin]\n"
		"                         read a password (one line) on standard input and\n"
		"                         print its bcrypt hash, for admin_users\n"
		"  user add DB NAME [--password-stdin] [--channel C]... [--role R]...\n"
		"                         [--email E] [--disabled]\n"
		"                         create a user; the password is read on standard input\n"
		"  user list DB           print the user names (GUEST excluded)\n"
		"  user delete DB NAME    delete a user and end its sessions\n"
		"  role add DB NAME [--channel C]...\n"
		"                         create a role\n"
		"  role list DB           print the role names\n"
		"  role delete DB NAME    delete a role\n"
		"  session purge          remove every expired session\n"
		"  store verify [PATH]    check the store at PATH (default: store.path); the\n"
		"                         programs should be stopped\n"
		"  store backup DIR       copy a consistent snapshot of the store into DIR,\n"
		"                         which must be new or empty\n"
		"  store restore DIR [PATH]\n"
		"                         replace the store at PATH (default: store.path)\n"
		"                         with the backup in DIR; the programs must be\n"
		"                         stopped\n"
		"  store checkpoint       write a checkpoint and remove unneeded log files\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE      the configuration file (default: %s)\n"
		"  -h, --help             print this help\n",
		sg_config_default_path());
}

/* Prints the reason of a failed command as one line. */
static void
print_error(const struct sg_error *err)
{
	fprintf(stderr, "%s: %s\n", PROGRAM,
		err->reason[0] != '\0' ? err->reason : "failed (no reason given)");
}

/* Prints the usage error in c->err as one line; returns the status. */
static int
usage_error(struct ctl *c)
{
	fprintf(stderr, "%s: %s (see %s --help)\n", PROGRAM, c->err.reason, PROGRAM);
	return SG_CTL_USAGE;
}

/* -------------------------------------------------------------------- */
/* Command line */

/*
 * Matches arg against an option taking a value: "-c VALUE" (when
 * shortname is given), "--long VALUE" or "--long=VALUE".  Returns 1 with
 * *val set (and *i moved past a separate value), 0 when arg is another
 * option, or -1 when the value is missing.
 */
static int
take_value(const char *arg, const char *shortname, const char *longname, int argc, char **argv,
	int *i, const char **val)
{
	size_t n = strlen(longname);

	if ((shortname != NULL && strcmp(arg, shortname) == 0) || strcmp(arg, longname) == 0) {
		if (*i + 1 >= argc)
			return -1;
		*i += 1;
		*val = argv[*i];
		return 1;
	}
	if (strncmp(arg, longname, n) == 0 && arg[n] == '=') {
		*val = arg + n + 1;
		return 1;
	}
	return 0;
}

/*
 * Reads argv into c.  Options may come anywhere; "--" ends them.  Returns
 * 0, 1 when help was asked for, or -1 with c->err set (a usage error).
 */
static int
parse(struct ctl *c, int argc, char **argv)
{
	const struct option_def *o;
	const char *arg, *val = NULL;
	int i, m, options_done = 0;
	size_t k;

	for (i = 1; i < argc; i++) {
		arg = argv[i];
		if (options_done || arg[0] != '-' || arg[1] == '\0') {
			if (c->n_words < WORDS_MAX)
				c->words[c->n_words] = arg;
			c->n_words++;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			options_done = 1;
			continue;
		}
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
			return 1;
		m = take_value(arg, "-c", "--config", argc, argv, &i, &val);
		if (m < 0)
			return sg_error_set(&c->err, 400, "option %s needs a value", arg);
		if (m > 0) {
			c->config_path = val;
			continue;
		}
		for (k = 0; k < N_OPTION_DEFS; k++) {
			o = &option_defs[k];
			m = o->takes_value ? take_value(arg, NULL, o->name, argc, argv, &i, &val)
					   : strcmp(arg, o->name) == 0;
			if (m != 0)
				break;
		}
		if (k == N_OPTION_DEFS)
			return sg_error_set(&c->err, 400, "unknown option: %s", arg);
		if (m < 0)
			return sg_error_set(&c->err, 400, "option %s needs a value", arg);
		if (o->bit == OPT_CHANNEL)
			c->channels[c->n_channels++] = val;
		else if (o->bit == OPT_ROLE)
			c->roles[c->n_roles++] = val;
		else if (o->bit == OPT_EMAIL && (c->given & OPT_EMAIL))
			return sg_error_set(&c->err, 400, "option --email given twice");
		else if (o->bit == OPT_EMAIL)
			c->email = val;
		c->given |= o->bit;
	}
	return 0;
}

/* -------------------------------------------------------------------- */
/* Shared steps */

/* Loads the configuration and opens logging (to stderr). */
static int
load_config(struct ctl *c)
{
	const char *path = c->config_path != NULL ? c->config_path : sg_config_default_path();

	if (sg_config_load(path, &c->cfg, &c->err) != 0)
		return -1;
	sg_log_open(PROGRAM, 0, (enum sg_log_level)c->cfg->log_level);
	return 0;
}

/*
 * Run as root on a store directory that belongs to another user (the
 * packages give it to the web server's user), takes on that user's
 * identity before the store is touched: Berkeley DB creates region and
 * log files as it goes, and files owned by root would lock the programs
 * out of their own store.  A store owned by root, or a missing one, is
 * left to root.  Returns 0, or -1 with c->err set.
 */
static int
become_store_owner(struct ctl *c, const char *path)
{
	struct stat sb;

	if (geteuid() != 0 || stat(path, &sb) != 0 || sb.st_uid == 0)
		return 0;
	if (setgroups(0, NULL) != 0 || setgid(sb.st_gid) != 0 || setuid(sb.st_uid) != 0)
		return sg_error_set(&c->err, 500,
			"store %s: cannot take on the identity of its owner (%lu:%lu): %s", path,
			(unsigned long)sb.st_uid, (unsigned long)sb.st_gid, strerror(errno));
	return 0;
}

/* Opens the store of the loaded configuration, as its owner. */
static int
open_store(struct ctl *c)
{
	if (become_store_owner(c, c->cfg->store_path) != 0)
		return -1;
	return sg_store_open(c->cfg->store_path, &c->store, &c->err);
}

/* Returns the database named name of the loaded configuration, or NULL. */
static const struct sg_db_config *
find_db(struct ctl *c, const char *name)
{
	const struct sg_db_config *db = sg_config_db(c->cfg, name);

	if (db == NULL)
		sg_error_set(&c->err, 404, "no such database: %s", name);
	return db;
}

/*
 * Reads one line from standard input into out (outsz bytes, NUL added),
 * without its newline.  read(2), one byte at a time, leaves no copy in a
 * stdio buffer; on a terminal the typing is not echoed.  Returns the
 * length, or -1 with err set.
 */
static int
read_password(char *out, size_t outsz, struct sg_error *err)
{
	struct termios saved, quiet;
	int echo_off = 0, rc = -1, any = 0;
	size_t n = 0;
	ssize_t r;
	char ch = '\0';

	if (isatty(STDIN_FILENO)) {
		/* Echo off before the prompt, so nothing typed after it shows. */
		if (tcgetattr(STDIN_FILENO, &saved) == 0) {
			quiet = saved;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			echo_off = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
		}
		fputs("Password: ", stderr);
		fflush(stderr);
	}
	for (;;) {
		r = read(STDIN_FILENO, &ch, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			sg_error_set(err, 500, "cannot read standard input: %s", strerror(errno));
			goto out;
		}
		if (r == 0 || ch == '\n')
			break;
		any = 1;
		if (ch == '\0') {
			sg_error_set(err, 400, "password may not hold a NUL character");
			goto out;
		}
		if (n + 1 >= outsz) {
			sg_error_set(err, 400, "password longer than %zu bytes", outsz - 1);
			goto out;
		}
		out[n++] = ch;
	}
	out[n] = '\0';
	if (r == 0 && !any) {
		sg_error_set(err, 400, "no password on standard input");
		goto out;
	}
	rc = (int)n;
out:
	if (echo_off) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
		fputc('\n', stderr);
	}
	sg_secure_wipe(&ch, sizeof(ch));
	if (rc < 0)
		sg_secure_wipe(out, outsz);
	return rc;
}

/*
 * Sets body[key] to an array of the n names (borrowed), refusing text
 * that is not UTF-8 as the admin API's JSON parser would.
 */
static int
set_names(json_t *body, const char *key, const char *const *names, size_t n, struct sg_error *err)
{
	json_t *arr = json_array();
	size_t i;

	if (arr == NULL)
		return sg_error_set(err, 500, "out of memory");
	for (i = 0; i < n; i++) {
		if (!sg_utf8_valid(names[i], strlen(names[i]))) {
			json_decref(arr);
			return sg_error_set(err, 400, "Invalid name in %s", key);
		}
		if (json_array_append_new(arr, json_string(names[i])) != 0) {
			json_decref(arr);
			return sg_error_set(err, 500, "out of memory");
		}
	}
	if (json_object_set_new(body, key, arr) != 0)
		return sg_error_set(err, 500, "out of memory");
	return 0;
}

/* Overwrites the text of a JSON string that held a password. */
static void
wipe_json_string(json_t *s)
{
	if (json_is_string(s))
		sg_secure_wipe((char *)json_string_value(s), json_string_length(s));
}

/* -------------------------------------------------------------------- */
/* Transactions */

/* A user or role write: what add_txn and delete_txn work on. */
struct write_op {
	int role; /* 1: a role; 0: a user */
	const struct sg_db_config *db;
	const char *name;
	const json_t *body; /* add: the checked document */
	const char *hash;   /* add: password hash, or NULL */
};

static int
add_txn(struct sg_txn *txn, void *arg)
{
	const struct write_op *op = arg;
	json_t *current = NULL, *rec = NULL;
	int rc;

	if (op->role)
		rc = sg_role_load(txn, op->db->name, op->name, SG_GET_FOR_UPDATE, &current);
	else
		rc = sg_user_load(txn, op->db, op->name, SG_GET_FOR_UPDATE, &current);
	if (rc == SG_STORE_OK)
		rc = TXN_EXISTS;
	if (rc != SG_STORE_NOTFOUND)
		goto out;
	if (op->role)
		rec = sg_role_merge(NULL, op->body, op->name);
	else
		rec = sg_user_merge(NULL, op->body, op->name, op->hash);
	if (rec == NULL) {
		rc = TXN_NOMEM;
		goto out;
	}
	rc = op->role ? sg_role_save(txn, op->db->name, rec) : sg_user_save(txn, op->db->name, rec);
out:
	json_decref(current);
	json_decref(rec);
	return rc;
}

static int
delete_txn(struct sg_txn *txn, void *arg)
{
	const struct write_op *op = arg;
	int rc;

	if (op->role)
		return sg_role_delete(txn, op->db->name, op->name);
	rc = sg_user_delete(txn, op->db->name, op->name);
	if (rc != SG_STORE_OK)
		return rc;
	/* As the admin API: a deleted user's sessions end with it. */
	rc = sg_session_delete_user(txn, op->db->name, op->name, NULL);
	return rc == SG_STORE_NOTFOUND ? SG_STORE_OK : rc;
}

struct list_op {
	int role;
	const char *db;
	json_t *names; /* filled (cleared first by the list) */
};

static int
list_txn(struct sg_txn *txn, void *arg)
{
	const struct list_op *op = arg;

	return op->role ? sg_role_list(txn, op->db, op->names)
			: sg_user_list(txn, op->db, op->names);
}

/* Runs fn durably; on failure sets c->err for a record kind of name. */
static int
run_txn(struct ctl *c, unsigned flags, sg_txn_fn fn, void *arg, const char *kind, const char *name)
{
	int rc;

	sg_error_clear(&c->err);
	rc = sg_store_run(c->store, flags, fn, arg, &c->err);
	switch (rc) {
	case SG_STORE_OK:
		return 0;
	case TXN_EXISTS:
		return sg_error_set(&c->err, 409, "%s already exists: %s", kind, name);
	case SG_STORE_NOTFOUND:
		return sg_error_set(&c->err, 404, "no such %s: %s", kind, name);
	case TXN_NOMEM:
		return sg_error_set(&c->err, 500, "out of memory");
	default:
		if (c->err.reason[0] == '\0')
			sg_error_set(&c->err, 500, "store %s: write failed", c->cfg->store_path);
		return -1;
	}
}

/* -------------------------------------------------------------------- */
/* Commands */

static int
cmd_check_config(struct ctl *c)
{
	if (load_config(c) != 0)
		return -1;
	printf("%s: OK\n", c->cfg->path);
	return 0;
}

static int
cmd_hash_password(struct ctl *c)
{
	char pw[PASSWORD_MAX + 1], hash[SG_PASSWORD_HASH_MAX];
	int n, rc = -1;

	hash[0] = '\0';
	n = read_password(pw, sizeof(pw), &c->err);
	if (n < 0)
		goto out;
	if (n < PASSWORD_MIN) {
		sg_error_set(&c->err, 400, "Passwords must be at least three characters");
		goto out;
	}
	if (sg_password_hash(pw, hash, sizeof(hash), &c->err) != 0)
		goto out;
	printf("%s\n", hash);
	rc = 0;
out:
	sg_secure_wipe(pw, sizeof(pw));
	sg_secure_wipe(hash, sizeof(hash));
	return rc;
}

/*
 * What user add and role add share first: the configuration, the
 * database, the name's rules, and a body {"name": <name>} with the
 * --channel grants.  Returns 0; 1 with why set (the name or a grant is
 * invalid); or -1 with c->err set.
 */
static int
add_begin(struct ctl *c, const char *kind, const struct sg_db_config **db, json_t **body,
	struct sg_error *why)
{
	const char *name = c->ops[1];

	*body = NULL;
	if (load_config(c) != 0 || (*db = find_db(c, c->ops[0])) == NULL)
		return -1;
	if (!sg_user_name_valid(name)) {
		sg_error_set(why, 400, "Invalid %s name", kind);
		return 1;
	}
	*body = json_pack("{s:s}", "name", name);
	if (*body == NULL) {
		sg_error_set(&c->err, 500, "out of memory");
		return -1;
	}
	if ((c->given & OPT_CHANNEL) &&
		set_names(*body, "admin_channels", c->channels, c->n_channels, why) != 0)
		return 1;
	return 0;
}

/* And last: writes the checked body (and password hash) unless the name exists. */
static int
add_commit(struct ctl *c, int role, const struct sg_db_config *db, const json_t *body,
	const char *hash)
{
	struct write_op op;

	if (open_store(c) != 0)
		return -1;
	op.role = role;
	op.db = db;
	op.name = c->ops[1];
	op.body = body;
	op.hash = hash;
	return run_txn(c, SG_TXN_DURABLE, add_txn, &op, role ? "role" : "user", op.name);
}

/* user add DB NAME [--password-stdin] [--channel C]... [--role R]... [--email E] [--disabled] */
static int
cmd_user_add(struct ctl *c)
{
	const char *name = c->ops[1];
	const struct sg_db_config *db = NULL;
	char pw[PASSWORD_MAX + 1], hash[SG_PASSWORD_HASH_MAX];
	json_t *body = NULL, *password = NULL;
	struct sg_error why;
	int n, rc = -1;

	pw[0] = '\0';
	hash[0] = '\0';
	sg_error_clear(&why);
	n = add_begin(c, "user", &db, &body, &why);
	if (n < 0)
		goto out;
	if (strcmp(name, SG_GUEST) == 0) {
		sg_error_set(&c->err, 409,
			"GUEST always exists: change it with "
			"PUT /%s/_user/GUEST on the admin API",
			db->name);
		goto out;
	}
	if (n > 0)
		goto invalid;
	if ((c->given & OPT_ROLE) &&
		set_names(body, "admin_roles", c->roles, c->n_roles, &why) != 0)
		goto invalid;
	if (c->email != NULL) {
		if (!sg_utf8_valid(c->email, strlen(c->email))) {
			sg_error_set(&why, 400, "Invalid email address");
			goto invalid;
		}
		json_object_set_new(body, "email", json_string(c->email));
	}
	if (c->given & OPT_DISABLED)
		json_object_set_new(body, "disabled", json_true());
	if (c->given & OPT_PASSWORD_STDIN) {
		n = read_password(pw, sizeof(pw), &c->err);
		if (n < 0)
			goto out;
		/* Any bytes but NUL, as Basic auth can carry them. */
		password = json_stringn_nocheck(pw, (size_t)n);
		if (password == NULL || json_object_set(body, "password", password) != 0) {
			sg_error_set(&c->err, 500, "out of memory");
			goto out;
		}
	}
	if (sg_user_check_doc(body, name, NULL, &why) != 0)
		goto invalid;
	if (password != NULL) {
		/* bcrypt takes a while: done before the transaction, not in it. */
		if (sg_password_hash(pw, hash, sizeof(hash), &c->err) != 0)
			goto out;
		json_object_del(body, "password");
	}
	if (add_commit(c, 0, db, body, password != NULL ? hash : NULL) != 0)
		goto out;
	sg_log_event(SG_LOG_INFO, db->name, name, "user.add", "created%s%s",
		password != NULL ? " with a password" : "",
		(c->given & OPT_DISABLED) ? ", disabled" : "");
	rc = 0;
	goto out;
invalid:
	sg_error_set(&c->err, 400, "cannot add user %s: %s", name, why.reason);
out:
	wipe_json_string(password);
	json_decref(password);
	json_decref(body);
	sg_secure_wipe(pw, sizeof(pw));
	sg_secure_wipe(hash, sizeof(hash));
	return rc;
}

/* role add DB NAME [--channel C]... */
static int
cmd_role_add(struct ctl *c)
{
	const char *name = c->ops[1];
	const struct sg_db_config *db = NULL;
	json_t *body = NULL;
	struct sg_error why;
	int rc = -1, begun;

	sg_error_clear(&why);
	begun = add_begin(c, "role", &db, &body, &why);
	if (begun < 0)
		goto out;
	if (begun > 0 || sg_role_check_doc(body, name, NULL, &why) != 0)
		goto invalid;
	if (add_commit(c, 1, db, body, NULL) != 0)
		goto out;
	sg_log_event(SG_LOG_INFO, db->name, NULL, "role.add", "created role %s", name);
	rc = 0;
	goto out;
invalid:
	sg_error_set(&c->err, 400, "cannot add role %s: %s", name, why.reason);
out:
	json_decref(body);
	return rc;
}

/* user delete DB NAME, role delete DB NAME */
static int
delete_record(struct ctl *c, int role)
{
	const char *name = c->ops[1];
	const struct sg_db_config *db;
	struct write_op op;

	if (load_config(c) != 0 || (db = find_db(c, c->ops[0])) == NULL)
		return -1;
	if (!role && strcmp(name, SG_GUEST) == 0)
		return sg_error_set(&c->err, 405, "GUEST cannot be deleted");
	if (open_store(c) != 0)
		return -1;
	op.role = role;
	op.db = db;
	op.name = name;
	op.body = NULL;
	op.hash = NULL;
	if (run_txn(c, SG_TXN_DURABLE, delete_txn, &op, role ? "role" : "user", name) != 0)
		return -1;
	if (role)
		sg_log_event(SG_LOG_INFO, db->name, NULL, "role.delete", "deleted role %s", name);
	else
		sg_log_event(SG_LOG_INFO, db->name, name, "user.delete", "deleted, sessions ended");
	return 0;
}

static int
cmd_user_delete(struct ctl *c)
{
	return delete_record(c, 0);
}

static int
cmd_role_delete(struct ctl *c)
{
	return delete_record(c, 1);
}

/* user list DB, role list DB: one name per line, in name order. */
static int
list_records(struct ctl *c, int role)
{
	const struct sg_db_config *db;
	struct list_op op;
	const json_t *item;
	size_t i;
	int rc = -1;

	op.names = NULL;
	if (load_config(c) != 0 || (db = find_db(c, c->ops[0])) == NULL || open_store(c) != 0)
		goto out;
	op.role = role;
	op.db = db->name;
	op.names = json_array();
	if (op.names == NULL) {
		sg_error_set(&c->err, 500, "out of memory");
		goto out;
	}
	if (run_txn(c, 0, list_txn, &op, role ? "role" : "user", "") != 0)
		goto out;
	json_array_foreach (op.names, i, item)
		printf("%s\n", json_string_value(item));
	rc = 0;
out:
	json_decref(op.names);
	return rc;
}

static int
cmd_user_list(struct ctl *c)
{
	return list_records(c, 0);
}

static int
cmd_role_list(struct ctl *c)
{
	return list_records(c, 1);
}

static int
cmd_session_purge(struct ctl *c)
{
	unsigned long removed = 0;

	if (load_config(c) != 0 || open_store(c) != 0)
		return -1;
	if (sg_session_purge(c->store, time(NULL), 1, &removed, &c->err) != 0)
		return -1;
	sg_log_event(SG_LOG_INFO, NULL, NULL, "session.purge", "removed %lu expired sessions",
		removed);
	printf("removed %lu expired sessions\n", removed);
	return 0;
}

/* store verify [PATH]: without PATH, the configuration's store.path. */
static int
cmd_store_verify(struct ctl *c)
{
	const char *path;

	if (c->n_ops > 0) {
		path = c->ops[0];
	} else {
		if (load_config(c) != 0)
			return -1;
		path = c->cfg->store_path;
	}
	/* sg_store_verify opens the store itself: this process must not. */
	if (become_store_owner(c, path) != 0 || sg_store_verify(path, &c->err) != 0)
		return -1;
	printf("%s: OK\n", path);
	return 0;
}

/*
 * Run as root on a store that belongs to another user, makes the backup
 * directory dir (or takes an empty one) for that user, who is about to
 * write the backup into it.
 */
static int
backup_dir_for_owner(struct ctl *c, const char *dir)
{
	struct stat sb, want;
	struct dirent *de;
	int empty = 1;
	DIR *d;

	if (geteuid() != 0 || stat(c->cfg->store_path, &want) != 0 || want.st_uid == 0)
		return 0;
	if (mkdir(dir, 0750) != 0 && errno != EEXIST)
		return sg_error_set(&c->err, 500, "%s: cannot create: %s", dir, strerror(errno));
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
		return sg_error_set(&c->err, 500, "%s: not a directory", dir);
	/* A directory with files in it is not given away (the backup refuses it). */
	if ((d = opendir(dir)) == NULL)
		return sg_error_set(&c->err, 500, "%s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			empty = 0;
	closedir(d);
	if (empty && (sb.st_uid != want.st_uid || sb.st_gid != want.st_gid) &&
		chown(dir, want.st_uid, want.st_gid) != 0)
		return sg_error_set(&c->err, 500, "%s: cannot give it to the store's owner: %s",
			dir, strerror(errno));
	return 0;
}

static int
cmd_store_backup(struct ctl *c)
{
	const char *dir = c->ops[0];

	if (load_config(c) != 0 || backup_dir_for_owner(c, dir) != 0 || open_store(c) != 0)
		return -1;
	if (sg_store_backup(c->store, dir, &c->err) != 0)
		return -1;
	sg_log_event(SG_LOG_INFO, NULL, NULL, "store.backup", "copied %s to %s", c->cfg->store_path,
		dir);
	printf("backed up %s to %s\n", c->cfg->store_path, dir);
	return 0;
}

/* store restore DIR [PATH]: without PATH, the configuration's store.path. */
static int
cmd_store_restore(struct ctl *c)
{
	const char *dir = c->ops[0], *path;

	if (c->n_ops > 1) {
		path = c->ops[1];
	} else {
		if (load_config(c) != 0)
			return -1;
		path = c->cfg->store_path;
	}
	/* sg_store_restore needs the store closed: this process must not open it. */
	if (sg_store_restore(dir, path, &c->err) != 0)
		return -1;
	sg_log_event(SG_LOG_INFO, NULL, NULL, "store.restore", "restored %s from %s", path, dir);
	printf("restored %s from %s\n", path, dir);
	return 0;
}

static int
cmd_store_checkpoint(struct ctl *c)
{
	if (load_config(c) != 0 || open_store(c) != 0)
		return -1;
	if (sg_store_checkpoint(c->store, &c->err) != 0)
		return -1;
	sg_log_event(SG_LOG_INFO, NULL, NULL, "store.checkpoint", "done in %s", c->cfg->store_path);
	printf("%s: checkpoint written\n", c->cfg->store_path);
	return 0;
}

static const struct command commands[] = {
	{"check-config", NULL, 0, 0, 0, cmd_check_config},
	{"hash-password", NULL, 0, 0, OPT_STDIN, cmd_hash_password},
	{"user", "add", 2, 2,
		OPT_CHANNEL | OPT_ROLE | OPT_EMAIL | OPT_DISABLED | OPT_PASSWORD_STDIN,
		cmd_user_add},
	{"user", "list", 1, 1, 0, cmd_user_list},
	{"user", "delete", 2, 2, 0, cmd_user_delete},
	{"role", "add", 2, 2, OPT_CHANNEL, cmd_role_add},
	{"role", "list", 1, 1, 0, cmd_role_list},
	{"role", "delete", 2, 2, 0, cmd_role_delete},
	{"session", "purge", 0, 0, 0, cmd_session_purge},
	{"store", "verify", 0, 1, 0, cmd_store_verify},
	{"store", "backup", 1, 1, 0, cmd_store_backup},
	{"store", "restore", 1, 2, 0, cmd_store_restore},
	{"store", "checkpoint", 0, 0, 0, cmd_store_checkpoint},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* Finds the command the words name, or sets a usage error in c->err. */
static const struct command *
find_command(struct ctl *c)
{
	const struct command *cmd;
	size_t i, words;

	for (i = 0; i < N_COMMANDS; i++) {
		cmd = &commands[i];
		if (strcmp(c->words[0], cmd->group) != 0)
			continue;
		if (cmd->verb != NULL && (c->n_words < 2 || strcmp(c->words[1], cmd->verb) != 0))
			continue;
		words = cmd->verb != NULL ? 2 : 1;
		c->ops = c->words + words;
		c->n_ops = c->n_words - words;
		return cmd;
	}
	if (c->n_words >= 2)
		sg_error_set(&c->err, 400, "unknown command: %s %s", c->words[0], c->words[1]);
	else
		sg_error_set(&c->err, 400, "unknown command: %s", c->words[0]);
	return NULL;
}

/* Checks the operands and options of the command line against cmd. */
static int
check_command_line(struct ctl *c, const struct command *cmd)
{
	const char *verb = cmd->verb != NULL ? cmd->verb : "";
	const char *sep = cmd->verb != NULL ? " " : "";
	unsigned extra = c->given & ~cmd->opts;
	size_t k;

	if (c->n_ops < cmd->min_ops)
		return sg_error_set(&c->err, 400, "%s%s%s: missing operand", cmd->group, sep, verb);
	if (c->n_ops > cmd->max_ops)
		return sg_error_set(&c->err, 400, "%s%s%s: too many operands", cmd->group, sep,
			verb);
	for (k = 0; extra != 0 && k < N_OPTION_DEFS; k++)
		if (extra & option_defs[k].bit)
			return sg_error_set(&c->err, 400, "%s%s%s does not take %s", cmd->group,
				sep, verb, option_defs[k].name);
	return 0;
}

int
sg_ctl_main(int argc, char **argv)
{
	struct ctl c;
	const struct command *cmd;
	int status = SG_CTL_FAIL, p;

	memset(&c, 0, sizeof(c));
	sg_error_clear(&c.err);
	/* Until the configuration says otherwise (and for commands without it). */
	sg_log_open(PROGRAM, 0, SG_LOG_INFO);
	/* Room for every argument being a --channel or a --role. */
	c.channels = calloc((size_t)argc + 1, sizeof(*c.channels));
	c.roles = calloc((size_t)argc + 1, sizeof(*c.roles));
	if (c.channels == NULL || c.roles == NULL) {
		sg_error_set(&c.err, 500, "out of memory");
		print_error(&c.err);
		goto out;
	}
	p = parse(&c, argc, argv);
	if (p > 0) {
		usage(stdout);
		status = SG_CTL_OK;
		goto out;
	}
	if (p < 0) {
		status = usage_error(&c);
		goto out;
	}
	if (c.n_words == 0) {
		usage(stderr);
		status = SG_CTL_USAGE;
		goto out;
	}
	cmd = find_command(&c);
	if (cmd == NULL) {
		print_error(&c.err);
		usage(stderr);
		status = SG_CTL_USAGE;
		goto out;
	}
	if (check_command_line(&c, cmd) != 0) {
		status = usage_error(&c);
		goto out;
	}
	sg_error_clear(&c.err);
	if (cmd->run(&c) != 0) {
		print_error(&c.err);
		goto out;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		sg_error_set(&c.err, 500, "cannot write standard output: %s", strerror(errno));
		print_error(&c.err);
		goto out;
	}
	status = SG_CTL_OK;
out:
	sg_store_close(c.store);
	sg_config_free(c.cfg);
	free(c.channels);
	free(c.roles);
	return status;
}

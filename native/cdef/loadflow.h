/* Generated from native/gridgate.h by the build: edit the header, not this file. */
typedef struct {
    size_t n_nodes;
    size_t n_kept;
    size_t n_loads;
    const int32_t *parent;
    const double *z_line;
    const int32_t
        *line_seg;
    const int32_t *kept_parent;
    const int32_t *kept_node;
    const double *z_seg;
    const double *y_kept;
    const int32_t *load_kept;
    const int32_t *load_type;
    const double *load_scale;
    double e_th[6];
    double z_th[4];
} gg_lf_model_t;
typedef struct {
    double *v;
    double *j;
    double *s;
    int32_t warm_valid;
} gg_lf_work_t;
#define GG_LF_CONST_POWER 0
#define GG_LF_CONST_IMPEDANCE 1
#define GG_LF_CONST_CURRENT 2
int gg_lf_check(const gg_lf_model_t *m);
int gg_lf_solve(const gg_lf_model_t *m, gg_lf_work_t *w, const double *p, const double *q,
                int symmetric, int warm, double tol, int max_iter, int32_t *iterations);
int gg_lf_solve_batch(const gg_lf_model_t *m, gg_lf_work_t *w, size_t n_steps, const double *p,
                      const double *q, int symmetric, int warm, double tol, int max_iter,
                      double *v_head, double *j_kept, int32_t *iterations, int32_t *status);
int gg_lf_expand(const gg_lf_model_t *m, size_t n_steps, int symmetric, const int32_t *status,
                 const double *v_head, const double *j_kept, double *v_out, double *j_out);
int gg_lf_expand_u(const gg_lf_model_t *m, size_t n_steps, int symmetric, const int32_t *status,
                   const double *v_head, const double *j_kept, double *scratch, double *u_out);

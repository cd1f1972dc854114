/* Unbalanced backward/forward sweep of a radial LV feeder (see gridgate.h, loadflow). */
#include <math.h>
#include <string.h>

#include "gridgate.h"
#include "lanes.h"

/* Below this |V|^2 (p.u.) a load's current is meaningless: the solution has collapsed. */
#define LF_V2_MIN 1e-12

/* out = z*j where z = z1*I + zm*ones acts on a three-phase current j (6 doubles). Inputs are read
 * into locals first: out may not alias them, but the compiler cannot know and would reload. */
static inline void zmul3(const double *z, const double *j, double *out)
{
    const double z0 = z[0], z1 = z[1], z2 = z[2], z3 = z[3];
    const double j0 = j[0], j1 = j[1], j2 = j[2], j3 = j[3], j4 = j[4], j5 = j[5];
    const double sr = j0 + j2 + j4;
    const double si = j1 + j3 + j5;
    const double mr = z2 * sr - z3 * si;
    const double mi = z2 * si + z3 * sr;
    out[0] = z0 * j0 - z1 * j1 + mr;
    out[1] = z0 * j1 + z1 * j0 + mi;
    out[2] = z0 * j2 - z1 * j3 + mr;
    out[3] = z0 * j3 + z1 * j2 + mi;
    out[4] = z0 * j4 - z1 * j5 + mr;
    out[5] = z0 * j5 + z1 * j4 + mi;
}

/* Largest of m and x, where a NaN x wins: a NaN voltage change must stop the sweep, not hide. */
static inline double max_nan(double m, double x) { return x <= m ? m : x; }

static inline int is_zero4(const double *y)
{
    return y[0] == 0.0 && y[1] == 0.0 && y[2] == 0.0 && y[3] == 0.0;
}

static void fill_nan(double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        x[i] = NAN;
    }
}

int gg_lf_check(const gg_lf_model_t *m)
{
    if (m == NULL || m->n_nodes == 0 || m->n_kept == 0 || m->n_kept > m->n_nodes) {
        return GG_EINVAL;
    }
    if (m->parent == NULL || m->z_line == NULL || m->line_seg == NULL || m->kept_parent == NULL
        || m->kept_node == NULL || m->z_seg == NULL || m->y_kept == NULL) {
        return GG_EINVAL;
    }
    if (m->n_loads > 0 && (m->load_kept == NULL || m->load_type == NULL || m->load_scale == NULL)) {
        return GG_EINVAL;
    }
    if (m->parent[0] != -1 || m->kept_parent[0] != -1 || m->kept_node[0] != 0) {
        return GG_EINVAL;
    }
    for (size_t i = 1; i < m->n_nodes; i++) {
        if (m->parent[i] < 0 || (size_t)m->parent[i] >= i) {
            return GG_EINVAL;
        }
        if (m->line_seg[i] < -1 || m->line_seg[i] >= (int32_t)m->n_kept) {
            return GG_EINVAL;
        }
    }
    for (size_t k = 1; k < m->n_kept; k++) {
        if (m->kept_parent[k] < 0 || (size_t)m->kept_parent[k] >= k || m->kept_node[k] < 0
            || (size_t)m->kept_node[k] >= m->n_nodes) {
            return GG_EINVAL;
        }
    }
    for (size_t l = 0; l < m->n_loads; l++) {
        if (m->load_kept[l] < 0 || (size_t)m->load_kept[l] >= m->n_kept || m->load_type[l] < 0
            || m->load_type[l] > GG_LF_CONST_CURRENT) {
            return GG_EINVAL;
        }
    }
    return GG_OK;
}

/* Current drawn by a load of power s at voltage v: conj(s*|v|^k / v) = conj(s) * v * |v|^k/|v|^2.
 * Returns 0 when the voltage has collapsed (checked even for a phase without power, so a solve
 * fails exactly when it always did). A phase without power draws nothing: *ir, *ii untouched. */
static inline int load_current(double sr, double si, double vr, double vi, int32_t type, double *ir,
                               double *ii)
{
    const double v2 = vr * vr + vi * vi;
    if (!(v2 > LF_V2_MIN)) {
        return 0;
    }
    if (sr == 0.0 && si == 0.0) {
        return 1;
    }
    double f;
    if (type == GG_LF_CONST_POWER) {
        f = 1.0 / v2;
    } else if (type == GG_LF_CONST_IMPEDANCE) {
        f = 1.0;
    } else {
        f = 1.0 / sqrt(v2);
    }
    *ir += f * (sr * vr + si * vi);
    *ii += f * (sr * vi - si * vr);
    return 1;
}

/* Each load's complex power per phase in p.u., from the caller's P and Q and unit factor. */
static void scale_loads(const gg_lf_model_t *m, const double *p, const double *q, double *s)
{
    for (size_t l = 0; l < m->n_loads; l++) {
        const double f = m->load_scale[l];
        for (int ph = 0; ph < 3; ph++) {
            s[6 * l + 2 * ph] = p[3 * l + ph] * f;
            s[6 * l + 2 * ph + 1] = q[3 * l + ph] * f;
        }
    }
}

static void flat_start(const gg_lf_model_t *m, double *v, int symmetric)
{
    for (size_t k = 0; k < m->n_kept; k++) {
        memcpy(&v[6 * k], m->e_th, symmetric ? 2 * sizeof(double) : 6 * sizeof(double));
    }
}

/* Iterates on the reduced tree until converged; returns iterations used, or 0 on failure. */
static int sweep_asym(const gg_lf_model_t *m, double *v, double *j, const double *s, double tol2,
                      int max_iter)
{
    const size_t nk = m->n_kept;
    for (int it = 1; it <= max_iter; it++) {
        /* Shunt currents at this iterate, then loads, then accumulate towards the root. */
        for (size_t k = 0; k < nk; k++) {
            const double *y = &m->y_kept[4 * k];
            if (is_zero4(y)) {
                memset(&j[6 * k], 0, 6 * sizeof(double));
            } else {
                zmul3(y, &v[6 * k], &j[6 * k]);
            }
        }
        for (size_t l = 0; l < m->n_loads; l++) {
            const size_t k = (size_t)m->load_kept[l];
            for (int p = 0; p < 6; p += 2) {
                if (!load_current(s[6 * l + p], s[6 * l + p + 1], v[6 * k + p], v[6 * k + p + 1],
                                  m->load_type[l], &j[6 * k + p], &j[6 * k + p + 1])) {
                    return 0;
                }
            }
        }
        for (size_t k = nk - 1; k > 0; k--) {
            double *jp = &j[6 * (size_t)m->kept_parent[k]];
            const double *jk = &j[6 * k];
            for (int p = 0; p < 6; p++) {
                jp[p] += jk[p];
            }
        }
        double dmax = 0.0;
        double dz[6];
        zmul3(m->z_th, j, dz);
        for (int p = 0; p < 6; p++) {
            const double nv = m->e_th[p] - dz[p];
            const double d = nv - v[p];
            v[p] = nv;
            dmax = max_nan(dmax, d * d);
        }
        for (size_t k = 1; k < nk; k++) {
            const double *vp = &v[6 * (size_t)m->kept_parent[k]];
            double *vk = &v[6 * k];
            zmul3(&m->z_seg[4 * k], &j[6 * k], dz);
            for (int p = 0; p < 6; p += 2) {
                const double nr = vp[p] - dz[p];
                const double ni = vp[p + 1] - dz[p + 1];
                const double dr = nr - vk[p];
                const double di = ni - vk[p + 1];
                vk[p] = nr;
                vk[p + 1] = ni;
                dmax = max_nan(dmax, dr * dr + di * di);
            }
        }
        if (!isfinite(dmax)) {
            return 0;
        }
        if (dmax < tol2) {
            return it;
        }
    }
    return 0;
}

/* Balanced network: phase a only, positive-sequence impedances, each load's mean phase power. */
static int sweep_sym(const gg_lf_model_t *m, double *v, double *j, const double *s, double tol2,
                     int max_iter)
{
    const size_t nk = m->n_kept;
    for (int it = 1; it <= max_iter; it++) {
        for (size_t k = 0; k < nk; k++) {
            const double *y = &m->y_kept[4 * k];
            j[6 * k] = y[0] * v[6 * k] - y[1] * v[6 * k + 1];
            j[6 * k + 1] = y[0] * v[6 * k + 1] + y[1] * v[6 * k];
        }
        for (size_t l = 0; l < m->n_loads; l++) {
            const size_t k = (size_t)m->load_kept[l];
            const double *sl = &s[6 * l];
            if (!load_current((sl[0] + sl[2] + sl[4]) / 3.0, (sl[1] + sl[3] + sl[5]) / 3.0,
                              v[6 * k], v[6 * k + 1], m->load_type[l], &j[6 * k], &j[6 * k + 1])) {
                return 0;
            }
        }
        for (size_t k = nk - 1; k > 0; k--) {
            const size_t p = (size_t)m->kept_parent[k];
            j[6 * p] += j[6 * k];
            j[6 * p + 1] += j[6 * k + 1];
        }
        double dmax = 0.0;
        for (size_t k = 0; k < nk; k++) {
            const double *z = k == 0 ? m->z_th : &m->z_seg[4 * k];
            const double br = k == 0 ? m->e_th[0] : v[6 * (size_t)m->kept_parent[k]];
            const double bi = k == 0 ? m->e_th[1] : v[6 * (size_t)m->kept_parent[k] + 1];
            const double nr = br - (z[0] * j[6 * k] - z[1] * j[6 * k + 1]);
            const double ni = bi - (z[0] * j[6 * k + 1] + z[1] * j[6 * k]);
            const double dr = nr - v[6 * k];
            const double di = ni - v[6 * k + 1];
            v[6 * k] = nr;
            v[6 * k + 1] = ni;
            dmax = max_nan(dmax, dr * dr + di * di);
        }
        if (!isfinite(dmax)) {
            return 0;
        }
        if (dmax < tol2) {
            return it;
        }
    }
    return 0;
}

/* Phases b and c of a balanced solution lag a by 120 and 240 degrees. */
static void rotate_bc(double *x, size_t n)
{
    const double c = -0.5;
    const double sn = 0.86602540378443864676;
    for (size_t i = 0; i < n; i++) {
        double *y = &x[6 * i];
        y[2] = c * y[0] + sn * y[1];
        y[3] = c * y[1] - sn * y[0];
        y[4] = c * y[0] - sn * y[1];
        y[5] = c * y[1] + sn * y[0];
    }
}

/* Every node voltage of the full tree from one reduced solution: one forward pass. A line
 * outside every loaded path carries no current, so its far end simply takes its parent's voltage
 * (exactly what vp - z*0 gives). */
static void expand_v(const gg_lf_model_t *m, const double *vh, const double *j, int symmetric,
                     double *v_out)
{
    memcpy(v_out, vh, 6 * sizeof(double));
    for (size_t i = 1; i < m->n_nodes; i++) {
        const int32_t seg = m->line_seg[i];
        const double *vp = &v_out[6 * (size_t)m->parent[i]];
        double *vi = &v_out[6 * i];
        if (seg < 0) {
            memcpy(vi, vp, 6 * sizeof(double));
        } else if (symmetric) {
            const double *z = &m->z_line[4 * i];
            const double *ji = &j[6 * (size_t)seg];
            vi[0] = vp[0] - (z[0] * ji[0] - z[1] * ji[1]);
            vi[1] = vp[1] - (z[0] * ji[1] + z[1] * ji[0]);
        } else {
            double dz[6];
            zmul3(&m->z_line[4 * i], &j[6 * (size_t)seg], dz);
            for (int p = 0; p < 6; p++) {
                vi[p] = vp[p] - dz[p];
            }
        }
    }
    if (symmetric) {
        rotate_bc(v_out, m->n_nodes);
    }
}

/* The series current of every line: its segment's current, zero off the loaded paths. */
static void expand_j(const gg_lf_model_t *m, const double *j, int symmetric, double *j_out)
{
    memcpy(j_out, j, 6 * sizeof(double));
    for (size_t i = 1; i < m->n_nodes; i++) {
        const int32_t seg = m->line_seg[i];
        if (seg < 0) {
            memset(&j_out[6 * i], 0, 6 * sizeof(double));
        } else {
            memcpy(&j_out[6 * i], &j[6 * (size_t)seg], 6 * sizeof(double));
        }
    }
    if (symmetric) {
        rotate_bc(j_out, m->n_nodes);
    }
}

static int solve_one(const gg_lf_model_t *m, gg_lf_work_t *w, const double *p, const double *q,
                     int symmetric, int warm, double tol2, int max_iter, int32_t *iterations)
{
    /* A balanced solution only holds phase a: it cannot seed an unbalanced one, nor vice versa. */
    const int32_t mode = symmetric ? 2 : 1;
    if (!(warm && w->warm_valid == mode)) {
        flat_start(m, w->v, symmetric);
    }
    scale_loads(m, p, q, w->s);
    const int it = symmetric ? sweep_sym(m, w->v, w->j, w->s, tol2, max_iter)
                             : sweep_asym(m, w->v, w->j, w->s, tol2, max_iter);
    if (it == 0) {
        /* The workspace holds a failed iterate: never warm-start from it. */
        w->warm_valid = 0;
        *iterations = max_iter;
        return GG_ENOCONV;
    }
    w->warm_valid = mode;
    *iterations = it;
    return GG_OK;
}

static int args_ok(const gg_lf_model_t *m, const gg_lf_work_t *w, const double *p, const double *q,
                   double tol, int max_iter, const int32_t *iterations)
{
    return m != NULL && w != NULL && w->v != NULL && w->j != NULL
           && (w->s != NULL || m->n_loads == 0) && iterations != NULL
           && ((p != NULL && q != NULL) || m->n_loads == 0) && tol > 0.0 && isfinite(tol)
           && max_iter > 0;
}

int gg_lf_solve(const gg_lf_model_t *m, gg_lf_work_t *w, const double *p, const double *q,
                int symmetric, int warm, double tol, int max_iter, int32_t *iterations)
{
    if (!args_ok(m, w, p, q, tol, max_iter, iterations)) {
        return GG_EINVAL;
    }
    return solve_one(m, w, p, q, symmetric, warm, tol * tol, max_iter, iterations);
}

int gg_lf_solve_batch(const gg_lf_model_t *m, gg_lf_work_t *w, size_t n_steps, const double *p,
                      const double *q, int symmetric, int warm, double tol, int max_iter,
                      double *v_head, double *j_kept, int32_t *iterations, int32_t *status)
{
    if (!args_ok(m, w, p, q, tol, max_iter, iterations) || status == NULL || v_head == NULL
        || j_kept == NULL) {
        return GG_EINVAL;
    }
    int failed = 0;
    const size_t nl = 3 * m->n_loads;
    const size_t nj = 6 * m->n_kept;
    for (size_t t = 0; t < n_steps; t++) {
        status[t] = solve_one(m, w, p + t * nl, q + t * nl, symmetric, warm || t > 0, tol * tol,
                              max_iter, &iterations[t]);
        if (status[t] == GG_OK) {
            memcpy(v_head + 6 * t, w->v, 6 * sizeof(double));
            memcpy(j_kept + nj * t, w->j, nj * sizeof(double));
        } else {
            fill_nan(v_head + 6 * t, 6);
            fill_nan(j_kept + nj * t, nj);
            failed++;
        }
    }
    return failed;
}

int gg_lf_expand(const gg_lf_model_t *m, size_t n_steps, int symmetric, const int32_t *status,
                 const double *v_head, const double *j_kept, double *v_out, double *j_out)
{
    if (m == NULL || (n_steps > 0 && (v_head == NULL || j_kept == NULL))) {
        return GG_EINVAL;
    }
    const size_t nj = 6 * m->n_kept;
    const size_t nn = 6 * m->n_nodes;
    for (size_t t = 0; t < n_steps; t++) {
        const int ok = status == NULL || status[t] == GG_OK;
        if (v_out != NULL) {
            if (ok) {
                expand_v(m, v_head + 6 * t, j_kept + nj * t, symmetric, v_out + nn * t);
            } else {
                fill_nan(v_out + nn * t, nn);
            }
        }
        if (j_out != NULL) {
            if (ok) {
                expand_j(m, j_kept + nj * t, symmetric, j_out + nn * t);
            } else {
                fill_nan(j_out + nn * t, nn);
            }
        }
    }
    return GG_OK;
}

/* |z| exactly as numpy's complex absolute computes it in its SIMD loop (larger * sqrt(1 + r*r)
 * with r = smaller/larger and the 1 + r*r fused), so a magnitude read through either path is the
 * same double; C99 hypot() differs from it in the last bit for about a third of the values. */
static double cabs_np(double re, double im)
{
    const double a = fabs(re);
    const double b = fabs(im);
    if (isinf(a) || isinf(b)) {
        return INFINITY;
    }
    if (isnan(a) || isnan(b)) {
        return NAN;
    }
    const double larger = a > b ? a : b;
    if (larger == 0.0) {
        return 0.0;
    }
    const double r = (a > b ? b : a) / larger;
    return sqrt(fma(r, r, 1.0)) * larger;
}

/* cabs_np over n complex values. The body has no branch and no call, so the compiler may keep it
 * in vector registers; a zero, infinite or NaN input gives a non-finite first result (0/0,
 * inf/inf), which the scalar pass redoes. Where the CPU has FMA (x86-64-v3, chosen at load time;
 * aarch64 always), fma() is one instruction instead of a libm call: same rounding either way. */
GG_V3_CLONE
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#endif
static void
magnitudes(const double *restrict z, size_t n, double *restrict u)
{
    for (size_t k = 0; k < n; k++) {
        const double a = fabs(z[2 * k]);
        const double b = fabs(z[2 * k + 1]);
        const double larger = a > b ? a : b;
        const double smaller = a > b ? b : a;
        const double r = smaller / larger;
        u[k] = sqrt(fma(r, r, 1.0)) * larger;
    }
    for (size_t k = 0; k < n; k++) {
        if (!isfinite(u[k])) {
            u[k] = cabs_np(z[2 * k], z[2 * k + 1]);
        }
    }
}

int gg_lf_expand_u(const gg_lf_model_t *m, size_t n_steps, int symmetric, const int32_t *status,
                   const double *v_head, const double *j_kept, double *scratch, double *u_out)
{
    if (m == NULL
        || (n_steps > 0
            && (v_head == NULL || j_kept == NULL || scratch == NULL || u_out == NULL))) {
        return GG_EINVAL;
    }
    const size_t nj = 6 * m->n_kept;
    const size_t nu = 3 * m->n_nodes;
    for (size_t t = 0; t < n_steps; t++) {
        double *u = u_out + nu * t;
        if (status != NULL && status[t] != GG_OK) {
            fill_nan(u, nu);
            continue;
        }
        expand_v(m, v_head + 6 * t, j_kept + nj * t, symmetric, scratch);
        magnitudes(scratch, nu, u);
    }
    return GG_OK;
}

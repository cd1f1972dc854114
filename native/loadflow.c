/* Unbalanced backward/forward sweep of a radial LV feeder (see gridgate.h, loadflow). */
#include <math.h>
#include <string.h>

#include "gridgate.h"

/* Below this |V|^2 (p.u.) a load's current is meaningless: the solution has collapsed. */
#define LF_V2_MIN 1e-12

/* out = z*j where z = z1*I + zm*ones acts on a three-phase current j (6 doubles). */
static inline void zmul3(const double *z, const double *j, double *out)
{
    const double sr = j[0] + j[2] + j[4];
    const double si = j[1] + j[3] + j[5];
    const double mr = z[2] * sr - z[3] * si;
    const double mi = z[2] * si + z[3] * sr;
    for (int p = 0; p < 6; p += 2) {
        out[p] = z[0] * j[p] - z[1] * j[p + 1] + mr;
        out[p + 1] = z[0] * j[p + 1] + z[1] * j[p] + mi;
    }
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
    if (m->parent == NULL || m->z_line == NULL || m->line_seg == NULL || m->kept_parent == NULL ||
        m->kept_node == NULL || m->z_seg == NULL || m->y_kept == NULL) {
        return GG_EINVAL;
    }
    if (m->n_loads > 0 && (m->load_kept == NULL || m->load_type == NULL)) {
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
        if (m->kept_parent[k] < 0 || (size_t)m->kept_parent[k] >= k || m->kept_node[k] < 0 ||
            (size_t)m->kept_node[k] >= m->n_nodes) {
            return GG_EINVAL;
        }
    }
    for (size_t l = 0; l < m->n_loads; l++) {
        if (m->load_kept[l] < 0 || (size_t)m->load_kept[l] >= m->n_kept || m->load_type[l] < 0 ||
            m->load_type[l] > GG_LF_CONST_CURRENT) {
            return GG_EINVAL;
        }
    }
    return GG_OK;
}

/* Current drawn by a load of power s at voltage v: conj(s*|v|^k / v) = conj(s) * v * |v|^k/|v|^2.
 * Returns 0 when the voltage has collapsed. */
static inline int load_current(double sr, double si, double vr, double vi, int32_t type, double *ir, double *ii)
{
    const double v2 = vr * vr + vi * vi;
    if (!(v2 > LF_V2_MIN)) {
        return 0;
    }
    double f;
    if (type == GG_LF_CONST_POWER) {
        f = 1.0 / v2;
    } else if (type == GG_LF_CONST_IMPEDANCE) {
        f = 1.0;
    } else {
        f = 1.0 / sqrt(v2);
    }
    *ir = f * (sr * vr + si * vi);
    *ii = f * (sr * vi - si * vr);
    return 1;
}

static void flat_start(const gg_lf_model_t *m, double *v, int symmetric)
{
    for (size_t k = 0; k < m->n_kept; k++) {
        memcpy(&v[6 * k], m->e_th, symmetric ? 2 * sizeof(double) : 6 * sizeof(double));
    }
}

/* Iterates on the reduced tree until converged; returns iterations used, or 0 on failure. */
static int sweep_asym(const gg_lf_model_t *m, double *v, double *j, const double *s, double tol2, int max_iter)
{
    const size_t nk = m->n_kept;
    for (int it = 1; it <= max_iter; it++) {
        /* Shunt currents at this iterate, then loads, then accumulate towards the root. */
        for (size_t k = 0; k < nk; k++) {
            zmul3(&m->y_kept[4 * k], &v[6 * k], &j[6 * k]);
        }
        for (size_t l = 0; l < m->n_loads; l++) {
            const size_t k = (size_t)m->load_kept[l];
            for (int p = 0; p < 6; p += 2) {
                double ir, ii;
                if (!load_current(s[6 * l + p], s[6 * l + p + 1], v[6 * k + p], v[6 * k + p + 1], m->load_type[l], &ir, &ii)) {
                    return 0;
                }
                j[6 * k + p] += ir;
                j[6 * k + p + 1] += ii;
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
            dmax = fmax(dmax, d * d);
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
                dmax = fmax(dmax, dr * dr + di * di);
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
static int sweep_sym(const gg_lf_model_t *m, double *v, double *j, const double *s, double tol2, int max_iter)
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
            double ir, ii;
            if (!load_current((sl[0] + sl[2] + sl[4]) / 3.0, (sl[1] + sl[3] + sl[5]) / 3.0, v[6 * k], v[6 * k + 1], m->load_type[l], &ir, &ii)) {
                return 0;
            }
            j[6 * k] += ir;
            j[6 * k + 1] += ii;
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
            dmax = fmax(dmax, dr * dr + di * di);
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

/* Writes every node voltage and line current of the full tree from the reduced solution. */
static void expand(const gg_lf_model_t *m, const double *v, const double *j, int symmetric, double *v_out, double *j_out)
{
    static const double zero[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    memcpy(v_out, v, 6 * sizeof(double));
    if (j_out != NULL) {
        memcpy(j_out, j, 6 * sizeof(double));
    }
    for (size_t i = 1; i < m->n_nodes; i++) {
        const int32_t seg = m->line_seg[i];
        const double *ji = seg >= 0 ? &j[6 * (size_t)seg] : zero;
        const double *vp = &v_out[6 * (size_t)m->parent[i]];
        double *vi = &v_out[6 * i];
        if (symmetric) {
            const double *z = &m->z_line[4 * i];
            vi[0] = vp[0] - (z[0] * ji[0] - z[1] * ji[1]);
            vi[1] = vp[1] - (z[0] * ji[1] + z[1] * ji[0]);
        } else {
            double dz[6];
            zmul3(&m->z_line[4 * i], ji, dz);
            for (int p = 0; p < 6; p++) {
                vi[p] = vp[p] - dz[p];
            }
        }
        if (j_out != NULL) {
            memcpy(&j_out[6 * i], ji, 6 * sizeof(double));
        }
    }
    if (symmetric) {
        /* Phases b and c of a balanced solution lag a by 120 and 240 degrees. */
        const double c = -0.5;
        const double sn = 0.86602540378443864676;
        for (size_t i = 0; i < m->n_nodes; i++) {
            double *x = &v_out[6 * i];
            x[2] = c * x[0] + sn * x[1];
            x[3] = c * x[1] - sn * x[0];
            x[4] = c * x[0] - sn * x[1];
            x[5] = c * x[1] + sn * x[0];
            if (j_out != NULL) {
                double *y = &j_out[6 * i];
                y[2] = c * y[0] + sn * y[1];
                y[3] = c * y[1] - sn * y[0];
                y[4] = c * y[0] - sn * y[1];
                y[5] = c * y[1] + sn * y[0];
            }
        }
    }
}

static int solve_one(const gg_lf_model_t *m, gg_lf_work_t *w, const double *s_load, int symmetric, int warm, double tol2, int max_iter, double *v_out, double *j_out, int32_t *iterations)
{
    /* A balanced solution only holds phase a: it cannot seed an unbalanced one, nor vice versa. */
    const int32_t mode = symmetric ? 2 : 1;
    if (!(warm && w->warm_valid == mode)) {
        flat_start(m, w->v, symmetric);
    }
    const int it = symmetric ? sweep_sym(m, w->v, w->j, s_load, tol2, max_iter)
                             : sweep_asym(m, w->v, w->j, s_load, tol2, max_iter);
    if (it == 0) {
        /* The workspace holds a failed iterate: never warm-start from it. */
        w->warm_valid = 0;
        fill_nan(v_out, 6 * m->n_nodes);
        if (j_out != NULL) {
            fill_nan(j_out, 6 * m->n_nodes);
        }
        *iterations = max_iter;
        return GG_ENOCONV;
    }
    w->warm_valid = mode;
    expand(m, w->v, w->j, symmetric, v_out, j_out);
    *iterations = it;
    return GG_OK;
}

static int args_ok(const gg_lf_model_t *m, const gg_lf_work_t *w, const double *s_load, double tol, int max_iter, const double *v_out, const int32_t *iterations)
{
    return m != NULL && w != NULL && w->v != NULL && w->j != NULL && v_out != NULL && iterations != NULL &&
           (s_load != NULL || m->n_loads == 0) && tol > 0.0 && isfinite(tol) && max_iter > 0;
}

int gg_lf_solve(const gg_lf_model_t *m, gg_lf_work_t *w, const double *s_load, int symmetric, int warm, double tol, int max_iter, double *v_out, double *j_out, int32_t *iterations)
{
    if (!args_ok(m, w, s_load, tol, max_iter, v_out, iterations)) {
        return GG_EINVAL;
    }
    return solve_one(m, w, s_load, symmetric, warm, tol * tol, max_iter, v_out, j_out, iterations);
}

int gg_lf_solve_batch(const gg_lf_model_t *m, gg_lf_work_t *w, size_t n_steps, const double *s_load, int symmetric, int warm, double tol, int max_iter, double *v_out, double *j_out, int32_t *iterations, int32_t *status)
{
    if (!args_ok(m, w, s_load, tol, max_iter, v_out, iterations) || status == NULL) {
        return GG_EINVAL;
    }
    int failed = 0;
    const size_t ns = 6 * m->n_loads;
    const size_t nn = 6 * m->n_nodes;
    for (size_t t = 0; t < n_steps; t++) {
        status[t] = solve_one(m, w, s_load + t * ns, symmetric, warm || t > 0, tol * tol, max_iter,
                              v_out + t * nn, j_out != NULL ? j_out + t * nn : NULL, &iterations[t]);
        failed += status[t] != GG_OK;
    }
    return failed;
}

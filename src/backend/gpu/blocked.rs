//! Generates `gemm_blocked`, the body of the register-blocked matmul kernels
//! of `shaders/linear_blocked.wgsl`, for one tile size.
//!
//! Each thread owns TM x TM outputs (TM = BM / 16) as vec4 accumulators, its
//! operand fragments, the prefetched next K step and (for the bias gradient)
//! TM row sums. Written as WGSL arrays indexed in loops, these are only in
//! registers if the driver's compiler unrolls every loop; measured on an
//! NVIDIA H100 through Vulkan, it did not, and the kernel ran 3-4x slower
//! than the unblocked one. So every per-thread array here is spelled out as
//! named variables, and only the loops over K remain.

use std::fmt::Write;

const LANES: [char; 4] = ['x', 'y', 'z', 'w'];

/// The WGSL source of `gemm_blocked` for a BM x BM tile with K step `bk`
/// (the constants BM, BK, BROW and BLOADS of the shader must match).
pub fn gemm_blocked(bm: u32, bk: u32) -> String {
    let tm = bm / 16;
    let groups = tm / 4;
    let loads = bk * bm / 256;
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "fn gemm_blocked(mode: u32, wg: vec3<u32>, lid: vec3<u32>) {{\n\
         \x20   let tx = lid.x;\n\
         \x20   let ty = lid.y;\n\
         \x20   let t = ty * 16u + tx;\n\
         \x20   let m0 = wg.y * BM;\n\
         \x20   let n0 = wg.x * BM;\n\
         \x20   let a_along_k = mode != MODE_BACKWARD_PARAMS;\n\
         \x20   let b_along_k = mode == MODE_FORWARD;\n\
         \x20   let with_db = mode == MODE_BACKWARD_PARAMS && wg.x == 0u;\n\
         \x20   let ktiles = (p.k + BK - 1u) / BK;"
    );
    for r in 0..tm {
        for g in 0..groups {
            let _ = writeln!(w, "    var acc_{r}_{g} = vec4<f32>();");
        }
        let _ = writeln!(w, "    var db_{r} = 0.0;");
    }
    for e in 0..loads {
        let _ = writeln!(
            w,
            "    let sa_{e} = tile_slot(a_along_k, t + {o}u, BK, BM);\n\
             \x20   let sb_{e} = tile_slot(b_along_k, t + {o}u, BK, BM);\n\
             \x20   var na_{e} = tile_load_plain(true, mode, m0, 0u, p.k, sa_{e});\n\
             \x20   var nb_{e} = tile_load_plain(false, mode, n0, 0u, p.k, sb_{e});",
            o = 256 * e
        );
    }
    let _ = writeln!(w, "    for (var kt = 0u; kt < ktiles; kt++) {{");
    for e in 0..loads {
        let _ = writeln!(
            w,
            "        blk_store(true, sa_{e}.x, sa_{e}.y, na_{e});\n\
             \x20       blk_store(false, sb_{e}.x, sb_{e}.y, nb_{e});"
        );
    }
    let _ = writeln!(
        w,
        "        workgroupBarrier();\n\
         \x20       if kt + 1u < ktiles {{\n\
         \x20           let k0 = (kt + 1u) * BK;"
    );
    for e in 0..loads {
        let _ = writeln!(
            w,
            "            na_{e} = tile_load_plain(true, mode, m0, k0, p.k, sa_{e});\n\
             \x20           nb_{e} = tile_load_plain(false, mode, n0, k0, p.k, sb_{e});"
        );
    }
    let _ = writeln!(
        w,
        "        }}\n        for (var kk = 0u; kk < BK; kk++) {{\n\
         \x20           let row = kk * BROW;"
    );
    for g in 0..groups {
        let _ = writeln!(
            w,
            "            let a_{g} = blk_a[row + {o}u + ty];\n\
             \x20           let b_{g} = blk_b[row + {o}u + tx];",
            o = g * 16
        );
    }
    for r in 0..tm {
        let a = format!("a_{}.{}", r / 4, LANES[(r % 4) as usize]);
        for g in 0..groups {
            let _ = writeln!(
                w,
                "            acc_{r}_{g} = fma(vec4<f32>({a}), b_{g}, acc_{r}_{g});"
            );
        }
    }
    let _ = writeln!(w, "            if with_db {{");
    for r in 0..tm {
        let a = format!("a_{}.{}", r / 4, LANES[(r % 4) as usize]);
        let _ = writeln!(w, "                db_{r} += {a};");
    }
    let _ = writeln!(
        w,
        "            }}\n        }}\n        workgroupBarrier();\n    }}"
    );
    for r in 0..tm {
        let _ = writeln!(
            w,
            "    let gm_{r} = m0 + {o}u + ty * 4u + {i}u;\n    if gm_{r} < p.m {{",
            o = (r / 4) * 64,
            i = r % 4
        );
        for g in 0..groups {
            let _ = writeln!(
                w,
                "        blk_store_out(mode, gm_{r}, n0 + {o}u + tx * 4u, acc_{r}_{g});",
                o = g * 64
            );
        }
        let _ = writeln!(
            w,
            "        if with_db && tx == 0u {{\n\
             \x20           buf_c[p.bias_off + gm_{r}] = db_{r};\n\
             \x20       }}\n    }}"
        );
    }
    let _ = writeln!(w, "}}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accumulator_is_declared_updated_and_stored() {
        for (bm, bk) in [(64, 16), (128, 8)] {
            let src = gemm_blocked(bm, bk);
            let tm = bm / 16;
            for r in 0..tm {
                for g in 0..tm / 4 {
                    let acc = format!("acc_{r}_{g}");
                    assert!(src.contains(&format!("var {acc} = vec4<f32>();")), "{acc}");
                    assert!(src.contains(&format!("{acc} = fma(")), "{acc}");
                    let store = format!(
                        "blk_store_out(mode, gm_{r}, n0 + {}u + tx * 4u, {acc});",
                        g * 64
                    );
                    assert!(src.contains(&store), "{store}");
                }
            }
            assert!(!src.contains("array<"), "no per-thread arrays remain");
        }
    }
}

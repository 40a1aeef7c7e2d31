// activation.wgsl: the activations by code, as src/model/spec.rs `Activation`:
// 0 identity, 1 relu, 2 leaky relu (slope), 3 sigmoid, 4 tanh.

const ACT_IDENTITY: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_LEAKY_RELU: u32 = 2u;
const ACT_SIGMOID: u32 = 3u;
const ACT_TANH: u32 = 4u;

// act(z).
fn act_apply(code: u32, slope: f32, z: f32) -> f32 {
    switch code {
        case 1u: {
            return max(z, 0.0);
        }
        case 2u: {
            return select(slope * z, z, z > 0.0);
        }
        case 3u: {
            return 1.0 / (1.0 + exp(-z));
        }
        case 4u: {
            // tanh(15) rounds to 1 in f32; clamping keeps drivers that build
            // tanh from exp(2z) away from inf / inf.
            return tanh(clamp(z, -15.0, 15.0));
        }
        default: {
            return z;
        }
    }
}

// act'(z) expressed through the output y = act(z).
fn act_derivative_from_output(code: u32, slope: f32, y: f32) -> f32 {
    switch code {
        case 1u: {
            return select(0.0, 1.0, y > 0.0);
        }
        case 2u: {
            return select(slope, 1.0, y > 0.0);
        }
        case 3u: {
            return y * (1.0 - y);
        }
        case 4u: {
            return 1.0 - y * y;
        }
        default: {
            return 1.0;
        }
    }
}

// act''(z) expressed through the output y = act(z): sigmoid's y (1 - y)
// (1 - 2 y), tanh's -2 y (1 - y^2), 0 for the piecewise linear ones.
fn act_second_derivative_from_output(code: u32, y: f32) -> f32 {
    switch code {
        case 3u: {
            return y * (1.0 - y) * (1.0 - 2.0 * y);
        }
        case 4u: {
            return -2.0 * y * (1.0 - y * y);
        }
        default: {
            return 0.0;
        }
    }
}

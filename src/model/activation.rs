//! A layer's nonlinearity, as data: what it computes, its derivative from
//! its output, and the code the shaders know it by.

/// A layer's nonlinearity. The derivative of each is computed from the
/// layer's *output*, so backward passes need no stored pre-activations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Identity,
    Relu,
    /// LeakyReLU with the given negative slope.
    LeakyRelu(f32),
    Sigmoid,
    Tanh,
}

impl Activation {
    /// `act(z)`.
    #[inline]
    pub fn apply(self, z: f32) -> f32 {
        match self {
            Activation::Identity => z,
            Activation::Relu => z.max(0.0),
            Activation::LeakyRelu(slope) => {
                if z > 0.0 {
                    z
                } else {
                    slope * z
                }
            }
            Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
            Activation::Tanh => z.tanh(),
        }
    }

    /// Whether `act''` is not zero (sigmoid and tanh): what a double
    /// backward through the activation must account for.
    pub fn is_curved(self) -> bool {
        matches!(self, Activation::Sigmoid | Activation::Tanh)
    }

    /// `act''(z)` expressed through the output `y = act(z)`: sigmoid's
    /// y (1 - y) (1 - 2 y), tanh's -2 y (1 - y^2), and 0 for the piecewise
    /// linear ones.
    #[inline]
    pub fn second_derivative_from_output(self, y: f32) -> f32 {
        match self {
            Activation::Identity | Activation::Relu | Activation::LeakyRelu(_) => 0.0,
            Activation::Sigmoid => y * (1.0 - y) * (1.0 - 2.0 * y),
            Activation::Tanh => -2.0 * y * (1.0 - y * y),
        }
    }

    /// `act'(z)` expressed through the output `y = act(z)`.
    #[inline]
    pub fn derivative_from_output(self, y: f32) -> f32 {
        match self {
            Activation::Identity => 1.0,
            Activation::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu(slope) => {
                if y > 0.0 {
                    1.0
                } else {
                    slope
                }
            }
            Activation::Sigmoid => y * (1.0 - y),
            Activation::Tanh => 1.0 - y * y,
        }
    }

    /// The code the shaders use for this activation (`shaders/activation.wgsl`).
    pub fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::LeakyRelu(_) => 2,
            Activation::Sigmoid => 3,
            Activation::Tanh => 4,
        }
    }

    /// The LeakyReLU slope, or 0 for the others.
    pub fn slope(self) -> f32 {
        match self {
            Activation::LeakyRelu(s) => s,
            _ => 0.0,
        }
    }
}
